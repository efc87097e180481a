"""`newsletter run`: the scheduler daemon (APScheduler 3).

APScheduler only decides *when* to look; the store decides whether a period goes out:
every run calls `send_schedule`, whose issue row is unique on (schedule, period end), so a
restart, a catch-up or a second daemon on the same database sends each period at most once.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler

from newsletter.audience.dispatch import drain_project
from newsletter.core import config
from newsletter.core.clock import utc_now as utc_now  # re-exported: the daemon's clock
from newsletter.core.durations import format_duration, parse_duration
from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import IssueStatus, Schedule
from newsletter.core.periods import AheadTrigger, CrontabTrigger
from newsletter.delivery.send import (
    SendSummary,
    allowed_placeholders,
    check_placeholders,
    send_schedule,
    stop_on_signals,
)
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.issues import Issues
from newsletter.storage.queue import DeliveryQueue

log = logging.getLogger("newsletter.scheduler")

JOB_ID = "schedule:{}"
POLL_JOB_ID = "sources:{}"
# Sources are polled this long before each send time (and again at it, if due by `every`).
POLL_AHEAD = timedelta(minutes=10)
RELOAD_SECONDS = 2.0  # how often schedule files are checked for changes (a few stat calls)
RETRY_JOB_ID = "queue"
BOUNCES_JOB_ID = "bounces"
OUTBOX_JOB_ID = "outbox"
OUTBOX_SECONDS = 60  # signup mails serve could not send (it died, or the relay refused) go out within this
# Outcomes that need the operator; "queued" does not: the retry timer finishes it.
FAILED = ("paused", "incomplete", "stopped", "expired", "failed")
MAX_GRACE = timedelta(days=366)  # a yearly cron is the rarest; beyond that a "missed" send is history
Results = list[SendSummary | None]  # None: that schedule's run failed (and was logged)
WARNING_PREFIX = "warning: "  # how send marks a warning in what it notifies


def parse_grace(text: str) -> timedelta:
    """`--grace`: "90m", "6h", "1d", "3600s", or combined ("1h30m"); at least a second,
    because APScheduler's misfire_grace_time is a positive number of seconds."""
    try:
        grace: timedelta | None = parse_duration(text)
    except ValueError:
        grace = None
    if grace is None or grace > MAX_GRACE:
        raise ConfigError(
            "--grace",
            "",
            f"expected a duration such as 6h or 90m, got {text!r}",
            "Use a number and a unit: s, m, h, d or w, at most 366d (e.g. --grace 6h).",
        )
    return grace


def due_fire_time(schedule: Schedule, now: datetime, grace: timedelta) -> datetime | None:
    """The latest fire time at or before `now`, if it is at most `grace` ago."""
    latest = select.previous_send_time(schedule, now + timedelta(microseconds=1))
    return latest if now - latest <= grace else None


def run_due(
    project: Project,
    schedule: Schedule,
    fire_time: datetime,
    transport: str | None,
    stop: threading.Event | None = None,
) -> SendSummary | None:
    """Send the issue going out at `fire_time` (or learn it already went) and log one line.
    Errors are logged, not raised: one schedule's broken template must not stop the others."""
    try:
        summary = send_schedule(project, schedule.name, fire_time, transport, stop=stop, notify=_notify)
    except NewsletterError as e:
        log.error(
            "%s %s: failed: %s%s",
            schedule.name,
            _local(fire_time, schedule.timezone),
            e,
            f" ({e.hint})" if e.hint else "",
        )
        return None
    except Exception:  # a bug or a database outage: log the traceback, keep the daemon alive
        log.exception("%s %s: failed", schedule.name, _local(fire_time, schedule.timezone))
        return None
    level = logging.WARNING if summary.outcome in FAILED else logging.INFO
    log.log(level, "%s", describe(summary, schedule.timezone))
    return summary


def _notify(line: str) -> None:
    """What a send says along the way; its "warning: ..." lines (what a bounded catch-up
    left out, an unknown category, a DKIM key's place) at the warning level."""
    if line.startswith(WARNING_PREFIX):
        log.warning("%s", line.removeprefix(WARNING_PREFIX))
    else:
        log.info("%s", line)


def send_due(
    project: Project,
    schedule: Schedule,
    fire_time: datetime,
    now: datetime,
    transport: str | None,
    stop: threading.Event | None = None,
) -> SendSummary | None:
    """A period's send, after polling the sources that feed it: `run` needs no ingest."""
    refresh_sources(project, schedule, fire_time, now)
    return run_due(project, schedule, fire_time, transport, stop)


def refresh_sources(project: Project, schedule: Schedule, fire_time: datetime, now: datetime) -> None:
    """Poll the schedule's sources not polled within their `every`, unless its issue for
    `fire_time` is already going out (its articles are chosen). A source that fails is
    logged and the issue goes out with what is stored."""
    from newsletter.sources import polling as sources

    issue = Issues(project.store).issue(schedule.name, fire_time)
    if not project.settings.sources or (issue is not None and issue.status != IssueStatus.BUILT):
        return
    try:  # as the file names them: "*" is every category, also those not stored yet
        categories = config.load_schedule(project.root, schedule.name).categories
    except (NewsletterError, OSError):
        categories = schedule.categories
    feeding = sources.feeding(project.store, project.settings, categories)
    try:
        results = sources.poll_all(project.store, project.settings, project.root, feeding, now, due_only=True)
    except NewsletterError as e:  # the store itself failed: the send will say so too
        log.error("%s: sources not polled: %s", schedule.name, e)
        return
    except Exception:  # a bug in a reader must not keep the issue from going out
        log.exception("%s: sources not polled", schedule.name)
        return
    for result in results:
        for warning in result.warnings:
            log.warning("source %s", warning)
        level = logging.ERROR if result.failed else logging.INFO
        tail = "; the issue goes out with what is stored" if result.failed else ""
        log.log(level, "source %s: %s: %s%s", result.name, result.status, result.message, tail)


def describe(summary: SendSummary, timezone: str) -> str:
    """The run's log line: schedule, period, outcome, counts, and what this run did."""
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items() if n)
    this_run = f"{summary.sent_now} sent by this run in {summary.seconds:.1f} s"
    detail = "; ".join(p for p in (counts, this_run, summary.message) if p)
    return (
        f"{summary.schedule} {_local(summary.period_start, timezone)} .. "
        f"{_local(summary.period_end, timezone)}: {summary.outcome} ({detail})"
    )


def _local(moment: datetime | None, timezone: str) -> str:
    if moment is None:  # a job without a next run time (APScheduler keeps it paused)
        return "never"
    return f"{moment.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M %Z}"


def _load(project: Project, name: str) -> Schedule | None:
    try:
        return project.schedule(name)
    except (NewsletterError, OSError) as e:
        log.error("%s: schedule not loaded: %s", name, e)
        return None


def catch_up(
    project: Project,
    now: datetime,
    grace: timedelta,
    transport: str | None = None,
    stop: threading.Event | None = None,
) -> Results:
    """For every schedule: finish the sends left in status "sending" (a crash or a
    stop), then send the latest period that fired within `grace` while we were down."""
    results: Results = []
    for name in config.schedule_names(project.root):
        if stop is not None and stop.is_set():
            break
        schedule = _load(project, name)
        if schedule is None:
            results.append(None)  # counted as a failure by `run --once`
            continue
        results += [
            send_due(project, schedule, end, now, transport, stop)
            for end in _catch_up_times(project, schedule, now, grace)
        ]
    return results


def _catch_up_times(project: Project, schedule: Schedule, now: datetime, grace: timedelta) -> list[datetime]:
    """Interrupted sends are resumed whatever their age: part of the list already has
    the issue, so the rest should get it too. A missed period only within grace."""
    ends = unfinished_sends(project, schedule, now, grace)
    due = due_fire_time(schedule, now, grace)
    if due is not None and due not in ends:
        ends.append(due)
    if not ends:
        log.info(
            "%s: nothing due; next send %s",
            schedule.name,
            _local(select.send_time(schedule, now), schedule.timezone),
        )
    return ends


def unfinished_sends(project: Project, schedule: Schedule, now: datetime, grace: timedelta) -> list[datetime]:
    """Send times of the schedule's issues still sending and within their queue lifetime;
    one recorded but never started only within `grace`, like a missed period."""
    lifetime = project.settings.sending.queue_lifetime
    ends = []
    for issue in sorted(Issues(project.store).issues(schedule.name), key=lambda i: i.period.end):
        if issue.status != IssueStatus.SENDING or not _resumable(schedule, issue.period.end):
            continue
        if issue.queued_at is not None and now - issue.queued_at > lifetime:
            log.warning(
                "%s %s: left unfinished past its %s queue lifetime; finish it with "
                "`newsletter send %s --at %s --retry-failed`",
                schedule.name,
                _local(issue.period.end, schedule.timezone),
                format_duration(lifetime),
                schedule.name,
                issue.period.end.isoformat(),
            )
            continue
        if now - issue.period.end > grace and not DeliveryQueue(project.store).started(issue.id):
            # Nobody has it yet (recorded by an older version, or a crash before the first
            # message): sending it now would be a missed period sent late, so the grace rules.
            log.warning(
                "%s %s: recorded but never started, and past the %s grace; not sent. Send it "
                "anyway with `newsletter send %s --at %s`",
                schedule.name,
                _local(issue.period.end, schedule.timezone),
                format_duration(grace),
                schedule.name,
                issue.period.end.isoformat(),
            )
            continue
        ends.append(issue.period.end)
    return ends


def retry_queued(
    root: Path, transport: str | None, stop: threading.Event, grace: timedelta = MAX_GRACE
) -> Results:
    """The retry timer's job: resume every unfinished send whose queued deliveries are due."""
    now = utc_now()
    try:
        opened = Project(root)
    except NewsletterError as e:
        log.error("queue: project not loaded: %s", e)
        return []
    with closing(opened) as project:
        if placeholders_refused(project, transport):
            return []
        return [
            run_due(project, schedule, end, transport, stop)
            for schedule in filter(None, (_load(project, n) for n in config.schedule_names(root)))
            for end in unfinished_sends(project, schedule, now, grace)
            if _due(project, schedule, end, now)
        ]


def _due(project: Project, schedule: Schedule, end: datetime, now: datetime) -> bool:
    issue = Issues(project.store).issue(schedule.name, end)
    if issue is None:
        return False
    due = DeliveryQueue(project.store).next_due(issue.id, now)
    return due is not None and due <= now


def _resumable(schedule: Schedule, end: datetime) -> bool:
    """Resuming calls send with `at` = the issue's end; if the cron changed since, that
    moment is no longer a send time and would name another period."""
    if select.send_time(schedule, end) == end:
        return True
    log.warning(
        "%s %s: left unfinished, and no longer a send time of cron %r; finish it with `newsletter send`",
        schedule.name,
        _local(end, schedule.timezone),
        schedule.cron,
    )
    return False


def placeholders_refused(project: Project, transport: str | None) -> bool:
    """`run` sends nothing over SMTP from what `init` wrote as placeholders (checked at
    start and at every wake-up: newsletter.toml is read again each time), unless the
    environment says NEWSLETTER_ALLOW_PLACEHOLDERS=1."""
    if allowed_placeholders(project.environ):
        return False
    try:
        check_placeholders(project.settings, project.transport_url(transport))
    except NewsletterError as e:
        log.error("not sending: %s (%s)", e, e.hint)
        return True
    return False


def scheduled_run(
    root: Path, name: str, grace: timedelta, transport: str | None, stop: threading.Event
) -> SendSummary | None:
    """A schedule's job. APScheduler 3 does not tell a job which fire time it runs for;
    it runs after one (late at most by the misfire grace), so the latest is the one.
    A fresh Project per run: jobs run in parallel threads and see newsletter.toml edits."""
    now = utc_now()
    try:
        opened = Project(root)
    except NewsletterError as e:
        log.error("%s: project not loaded: %s", name, e)
        return None
    with closing(opened) as project:
        if placeholders_refused(project, transport):
            return None
        schedule = _load(project, name)
        fire = due_fire_time(schedule, now, grace) if schedule else None
        if schedule is not None and fire is None:  # its cron was just edited: reload fixes the job
            log.warning("%s: woke at %s but no send time is within grace", name, _local(now, "UTC"))
        return send_due(project, schedule, fire, now, transport, stop) if schedule and fire else None


class ScheduleJobs:
    """The scheduler's jobs kept in step with schedules/*.toml: one job per schedule."""

    def __init__(
        self,
        scheduler: BackgroundScheduler,
        root: Path,
        grace: timedelta,
        transport: str | None,
        stop: threading.Event,
    ) -> None:
        self.scheduler, self.root, self.grace = scheduler, root, grace
        self.transport, self.stop = transport, stop
        self.files: dict[str, tuple[int, int]] | None = None  # name -> (mtime_ns, size)
        self.timing: dict[str, tuple[str, str]] = {}  # name -> (cron, zone) its job was made from

    def reload(self, since: datetime | None = None) -> list[str]:
        """Apply what changed in the folder since the last call; `since` (at start: when the
        catch-up began) is where each new job's first run is counted from."""
        try:
            files = _fingerprints(self.root)
        except OSError as e:
            log.error("schedules not reloaded: %s", e)
            return []
        if files == self.files:
            return []
        first, old = self.files is None, self.files or {}
        self.files = files
        notes = [self._remove(name) for name in list(self.timing) if name not in files]
        notes += [
            self._update(name, since or utc_now()) for name, stamp in files.items() if old.get(name) != stamp
        ]
        log.info("%s: %s", "schedules" if first else "reloaded schedules", "; ".join(notes) or "none")
        return notes

    def _remove(self, name: str) -> str:
        self.scheduler.remove_job(JOB_ID.format(name))
        self.scheduler.remove_job(POLL_JOB_ID.format(name))
        del self.timing[name]
        return f"{name} removed"

    def _update(self, name: str, since: datetime) -> str:
        try:
            schedule = config.load_schedule(self.root, name)
        except (NewsletterError, OSError) as e:  # a half-saved file: wait for the next save
            log.error("%s: schedule not loaded: %s", name, e)
            return f"{name} invalid ({'previous timing kept' if name in self.timing else 'not scheduled'})"
        timing = (schedule.cron, schedule.timezone)
        if self.timing.get(name) == timing:  # content is read at send time; the job stands
            return f"{name} updated"
        job = self._add(schedule, since)
        self.timing[name] = timing
        return f"{name} next {_local(job.next_run_time, schedule.timezone)}"

    def _add(self, schedule: Schedule, since: datetime) -> Job:
        trigger = config.cron_trigger(schedule.cron, schedule.timezone)
        self._add_poll(schedule, trigger, since)
        return self.scheduler.add_job(
            scheduled_run,
            trigger=trigger,
            id=JOB_ID.format(schedule.name),
            name=schedule.name,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            # APScheduler's default of 1 s would silently drop a send after any downtime.
            misfire_grace_time=int(self.grace.total_seconds()),
            # Counted from `since`, so a fire time passing during a long catch-up still runs.
            next_run_time=trigger.get_next_fire_time(None, since),
            args=(self.root, schedule.name, self.grace, self.transport, self.stop),
        )

    def _add_poll(self, schedule: Schedule, trigger: CrontabTrigger, since: datetime) -> Job:
        ahead = AheadTrigger(trigger, POLL_AHEAD)
        return self.scheduler.add_job(
            scheduled_poll,
            trigger=ahead,
            id=POLL_JOB_ID.format(schedule.name),
            name=f"{schedule.name} sources",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            # Late past the send time, the send's own poll does it.
            misfire_grace_time=int(POLL_AHEAD.total_seconds()),
            next_run_time=ahead.get_next_fire_time(None, since),
            args=(self.root, schedule.name),
        )


def scheduled_poll(root: Path, name: str) -> None:
    """A schedule's poll job, `POLL_AHEAD` before its send time."""
    now = utc_now()
    try:
        opened = Project(root)
    except NewsletterError as e:
        log.error("%s: project not loaded: %s", name, e)
        return
    with closing(opened) as project:
        schedule = _load(project, name)
        if schedule is not None:
            refresh_sources(project, schedule, select.send_time(schedule, now), now)


def _fingerprints(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for name in config.schedule_names(root):
        with suppress(FileNotFoundError):  # deleted while we listed the folder
            stat = (root / config.SCHEDULES_DIR / f"{name}.toml").stat()
            found[name] = (stat.st_mtime_ns, stat.st_size)
    return found


def run_daemon(root: Path, *, once: bool, grace: timedelta, transport: str | None) -> None:
    """Catch up, then (unless `once`) send each schedule at its cron time until SIGTERM/SIGINT."""
    configure_logging()
    stop = threading.Event()
    with stop_on_signals(stop):
        started = utc_now()
        with closing(Project(root)) as project:
            if placeholders_refused(project, transport):
                raise NewsletterError(
                    "run sends nothing from placeholder settings; see the log",
                    "Fix newsletter.toml, or set NEWSLETTER_ALLOW_PLACEHOLDERS=1 for a test.",
                )
            # Last issue's hard bounces and complaints are suppressed before this one goes out.
            mailbox_read = _read_bounces(root) if once and project.settings.bounces.mailbox else True
            log.info("catching up on %s (grace %s)", project.root, grace)
            results = catch_up(project, started, grace, transport, stop)
        drain_project(root, transport)  # signup mails `serve` queued and could not send
        if once:
            _raise_if_failed(results, mailbox_read)
        elif not stop.is_set():
            serve(root, started, grace, transport, stop)


def serve(
    root: Path, since: datetime, grace: timedelta, transport: str | None, stop: threading.Event
) -> None:
    """The scheduler runs in its own thread, so the signal handler only sets `stop` and this
    thread polls the schedule files, then shuts down once the sends have stopped (each
    finishes its messages in flight; the next start resumes the rest)."""
    scheduler = BackgroundScheduler(timezone=UTC)
    jobs = ScheduleJobs(scheduler, root, grace, transport, stop)
    jobs.reload(since)
    with closing(Project(root)) as project:
        every = project.settings.sending.retry_interval
        bounces = project.settings.bounces
    scheduler.add_job(
        retry_queued,
        "interval",
        seconds=every.total_seconds(),
        id=RETRY_JOB_ID,
        name="retry queued deliveries",
        coalesce=True,
        max_instances=1,
        args=(root, transport, stop, grace),
    )
    if bounces.mailbox:  # bounces, complaints and mailto: unsubscribes (newsletter/delivery/bounces.py)
        from newsletter.delivery.bounces import scheduled as read_bounces

        scheduler.add_job(
            read_bounces,
            "interval",
            seconds=bounces.every.total_seconds(),
            id=BOUNCES_JOB_ID,
            name="read the bounce mailbox",
            coalesce=True,
            max_instances=1,
            next_run_time=utc_now(),
            args=(root, log),
        )
    scheduler.add_job(
        drain_project,
        "interval",
        seconds=OUTBOX_SECONDS,
        id=OUTBOX_JOB_ID,
        name="send the outbox",
        coalesce=True,
        max_instances=1,
        args=(root, transport),
    )
    scheduler.start()
    log.info("running; schedule files are reloaded on change; SIGTERM or Ctrl-C stops")
    while not stop.wait(RELOAD_SECONDS):
        jobs.reload()
    log.info("stopping: finishing the messages in flight")
    scheduler.shutdown(wait=True)
    log.info("stopped")


def _read_bounces(root: Path) -> bool:
    """`run --once` reads the bounce mailbox once, as the daemon's job does every
    `[bounces] every`; False when it could not (logged)."""
    from newsletter.delivery.bounces import scheduled as read_bounces

    return read_bounces(root, log) is not None


def _raise_if_failed(results: Results, mailbox_read: bool = True) -> None:
    """`run --once` is for cron and timers: exit 1 (via the CLI) when a send did not
    complete or the bounce mailbox could not be read."""
    if failed := sum(1 for r in results if r is None or r.outcome in FAILED):
        raise NewsletterError(
            f"{failed} of {len(results)} scheduled sends did not complete; see the log",
            "Fix the cause and run again: nothing already sent is sent twice.",
        )
    if not mailbox_read:
        raise NewsletterError(
            "the bounce mailbox could not be read; see the log",
            "Fix [bounces] mailbox (or its password) and run again: no mail is lost.",
        )


def configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"
    )
    log.setLevel(logging.INFO)
    # Its INFO lines ("Added job", "Running job") repeat ours; its warnings (missed runs) stay.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
