"""`newsletter run`: the scheduler daemon (APScheduler 3).

APScheduler only decides *when* to look; the store decides whether a period goes out:
every run calls `send_schedule`, whose issue row is unique on (schedule, period end), so a
restart, a catch-up or a second daemon on the same database sends each period at most once.
Several daemons on one PostgreSQL database: the one holding the scheduler lock
(storage/leadership.py) records each period, the others stand by and deliver what is
queued, and one of them takes over at the next fire time after the active one dies.
Which periods are due, and running each one, is due_sends.py; this module keeps the jobs.
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler

from newsletter.audience.dispatch import drain_project
from newsletter.core import config, schedules
from newsletter.core.clock import local_time
from newsletter.core.clock import utc_now as utc_now  # re-exported: the daemon's clock
from newsletter.core.durations import parse_duration
from newsletter.core.errors import ConfigError, NewsletterError
from newsletter.core.models import Schedule
from newsletter.core.periods import AheadTrigger, CrontabTrigger
from newsletter.delivery.due_sends import (
    FAILED,
    MAX_GRACE,
    Results,
    approval_rounds,
    catch_up,
    due_fire_time,
    load_logged,
    placeholders_refused,
    refresh_sources,
    retry_queued,
    send_due,
)
from newsletter.delivery.send import SendSummary, stop_on_signals
from newsletter.digest import selection as select
from newsletter.project import Project
from newsletter.storage.leadership import SchedulerLock

log = logging.getLogger("newsletter.scheduler")

JOB_ID = "schedule:{}"
POLL_JOB_ID = "sources:{}"
# Sources are polled this long before each send time (and again at it, if due by `every`).
POLL_AHEAD = timedelta(minutes=10)
RELOAD_SECONDS = 2.0  # how often schedule files are checked for changes (a few stat calls)
RETRY_JOB_ID = "queue"
BOUNCES_JOB_ID = "bounces"
OUTBOX_JOB_ID = "outbox"
APPROVAL_JOB_ID = "approval"
APPROVAL_SECONDS = 60  # an issue approved late goes out within this; the next is built for its editor
OUTBOX_SECONDS = 60  # signup mails serve could not send (it died, or the relay refused) go out within this


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


def scheduled_run(
    root: Path,
    name: str,
    grace: timedelta,
    transport: str | None,
    stop: threading.Event,
    lock: SchedulerLock | None = None,
) -> SendSummary | None:
    """A schedule's job. APScheduler 3 does not tell a job which fire time it runs for;
    it runs after one (late at most by the misfire grace), so the latest is the one.
    A fresh Project per run: jobs run in parallel threads and see newsletter.toml edits.
    With `lock`, a standby daemon leaves the period to the one that holds it."""
    now = utc_now()
    try:
        opened = Project(root)
    except NewsletterError as e:
        log.error("%s: project not loaded: %s", name, e)
        return None
    with closing(opened) as project:
        if placeholders_refused(project, transport):
            return None
        schedule = load_logged(project, name)
        fire = due_fire_time(schedule, now, grace) if schedule else None
        if schedule is not None and fire is None:  # its cron was just edited: reload fixes the job
            log.warning("%s: woke at %s but no send time is within grace", name, local_time(now, "UTC"))
        if not schedule or not fire or not records(lock, schedule, fire):
            return None
        return send_due(project, schedule, fire, now, transport, stop)


def records(lock: SchedulerLock | None, schedule: Schedule, fire: datetime) -> bool:
    """Whether this daemon records the period at `fire`: it holds the scheduler lock, or
    takes it now (the active daemon stopped or died); said in the log either way."""
    if lock is None or not lock.shared:
        return True
    was = lock.was_held
    if lock.held():
        if not was:
            log.info("took the scheduler lock: this daemon records the periods from now on")
        return True
    log.info(
        "%s %s: another daemon holds the scheduler lock and records this period; "
        "this one delivers what is queued",
        schedule.name,
        local_time(fire, schedule.timezone),
    )
    return False


class ScheduleJobs:
    """The scheduler's jobs kept in step with schedules/*.toml: one job per schedule."""

    def __init__(
        self,
        scheduler: BackgroundScheduler,
        root: Path,
        grace: timedelta,
        transport: str | None,
        stop: threading.Event,
        lock: SchedulerLock | None = None,
    ) -> None:
        self.scheduler, self.root, self.grace = scheduler, root, grace
        self.transport, self.stop, self.lock = transport, stop, lock
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
            schedule = schedules.load_schedule(self.root, name)
        except (NewsletterError, OSError) as e:  # a half-saved file: wait for the next save
            log.error("%s: schedule not loaded: %s", name, e)
            return f"{name} invalid ({'previous timing kept' if name in self.timing else 'not scheduled'})"
        timing = (schedule.cron, schedule.timezone)
        if self.timing.get(name) == timing:  # content is read at send time; the job stands
            return f"{name} updated"
        job = self._add(schedule, since)
        self.timing[name] = timing
        return f"{name} next {local_time(job.next_run_time, schedule.timezone)}"

    def _add(self, schedule: Schedule, since: datetime) -> Job:
        trigger = schedules.cron_trigger(schedule.cron, schedule.timezone)
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
            args=(self.root, schedule.name, self.grace, self.transport, self.stop, self.lock),
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
        schedule = load_logged(project, name)
        if schedule is not None:
            refresh_sources(project, schedule, select.send_time(schedule, now), now)


def _fingerprints(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for name in schedules.schedule_names(root):
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
    with closing(Project(root)) as project:  # kept open: the scheduler lock's session is its own
        lock = SchedulerLock(project.store)
        announce(lock)
        try:
            _serve(root, since, grace, transport, stop, lock)
        finally:
            lock.release()


def announce(lock: SchedulerLock) -> None:
    """Which of several daemons on one PostgreSQL database this one is, at start."""
    if not lock.shared:
        return
    if lock.held():
        log.info("scheduler lock taken: this daemon records the periods")
    else:
        log.info(
            "another daemon holds the scheduler lock: this one stands by (delivers what is "
            "queued; records periods once the other stops)"
        )


def _serve(
    root: Path,
    since: datetime,
    grace: timedelta,
    transport: str | None,
    stop: threading.Event,
    lock: SchedulerLock,
) -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    jobs = ScheduleJobs(scheduler, root, grace, transport, stop, lock)
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
    scheduler.add_job(
        approval_rounds,
        "interval",
        seconds=APPROVAL_SECONDS,
        id=APPROVAL_JOB_ID,
        name="approvals: late-approved issues sent, the next built",
        coalesce=True,
        max_instances=1,
        args=(root, grace, transport, stop),
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
