"""Workers: processes that deliver from the shared ledger, so sending uses every core and
every machine pointed at the same database.

A worker claims batches of deliveries of every issue going out (storage/queue.py: FOR
UPDATE SKIP LOCKED on PostgreSQL, a conditional take on SQLite) and delivers them exactly as
`send` does in its own process (delivery/delivering.py): the same leases, retries, breaker
and DKIM. `newsletter worker` runs one until nothing is due (--once) or until stopped;
`send --workers N` records the issue, then delivers it from N worker processes while it
renders the variants still unrendered. `--rate` is shared through the database.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any

from newsletter.core.clock import utc_now
from newsletter.core.errors import NewsletterError
from newsletter.core.tokens import Tokens, secret_key
from newsletter.delivery.delivering import Delivering, Notify, Progress, SendOptions
from newsletter.delivery.signing import preflight as dkim_preflight
from newsletter.delivery.transports import rate_key, timeout_of, transport_factory
from newsletter.storage.issues import IssueRecord
from newsletter.storage.queue import DeliveryQueue
from newsletter.storage.rates import SharedRate

if TYPE_CHECKING:
    from newsletter.delivery.delivering import Flag
    from newsletter.delivery.send import SendPlan
    from newsletter.project import Project

POLL = 5.0  # seconds a worker that is not --once waits between looks at an idle ledger
# How the run of several workers ends: the first of these any of them ended with.
WORST = ("paused", "stopped", "expired", "queued", "failed")


PER_WORKER = 1000  # deliveries due per extra process: one costs about a second to start


def auto(waiting: int) -> int:
    """`send`'s default: one process per core, but no more than one per PER_WORKER
    deliveries due (a small send is over before a second process has started)."""
    return max(1, min(os.cpu_count() or 1, waiting // PER_WORKER))


@dataclass
class Outcome:
    sent: int = 0
    outcome: str = "sent"
    message: str = ""


def resolved(project: Project, url: str, options: SendOptions) -> SendOptions:
    """Options as `send_schedule` resolves them: the lease from the transport's timeout."""
    return options.resolved(project.settings.sending, timedelta(seconds=2 * timeout_of(url) + 5))


class Sender:
    """What one worker process delivers with: transport, tokens, DKIM, the shared rate."""

    def __init__(self, project: Project, url: str, options: SendOptions, notify: Notify) -> None:
        self.project, self.url, self.notify = project, url, notify
        self.options = replace(resolved(project, url, options), alongside=True)
        self.factory = transport_factory(url, project.environ)
        self.tokens = Tokens(secret_key(project.environ))
        self.dkim = dkim_preflight(project.settings, project.environ, project.root, notify)
        self.ledger = DeliveryQueue(project.store)
        rate = self.options.rate
        self.limiter = SharedRate(project.store, rate_key(url), rate) if rate else None

    def run(
        self,
        issue: IssueRecord,
        stop: threading.Event,
        rendered: Flag | None = None,
        progress: Progress | None = None,
    ) -> Delivering:
        """One delivering run over `issue`, until its queue is done for now."""
        delivering = Delivering(
            self.project.settings,
            self.ledger,
            issue.id,
            self.project.schedule(issue.schedule),
            self.factory,
            self.tokens,
            self.options,
            utc_now,
            progress,
            stop,
            self.notify,
            self.dkim,
            self.limiter,
            rendered,
        )
        delivering.deliver()
        return delivering


def work(
    project: Project,
    transport: str | None,
    options: SendOptions,
    stop: threading.Event,
    notify: Notify,
    once: bool,
) -> int:
    """`newsletter worker`: deliver every issue going out until nothing is due (once) or
    until `stop`; the messages sent."""
    sender = Sender(project, project.transport_url(transport), options, notify)
    sent = 0
    while not stop.is_set():
        now_sent = sum(deliver_issue(sender, issue, stop) for issue in sender.ledger.sending_issues())
        sent += now_sent
        if once:
            break
        if not now_sent:
            stop.wait(POLL)
    return sent


def deliver_issue(sender: Sender, issue: IssueRecord, stop: threading.Event) -> int:
    if stop.is_set():
        return 0
    try:
        run = sender.run(issue, stop)
    except NewsletterError as e:  # its schedule file is gone or broken: the others go on
        sender.notify(f"{issue.schedule}: not delivered: {e}")
        return 0
    if run.sent or run.outcome not in ("sent", "queued"):
        end = issue.period.end
        said = f" ({run.message})" if run.message else ""
        sender.notify(f"{issue.schedule} {end:%Y-%m-%d}: {run.outcome}{said}; {run.sent} sent")
    return run.sent


# -- send --workers N ---------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What a worker process of `send --workers` needs (pickled to it)."""

    root: Path
    environ: dict[str, str]
    issue_id: int
    url: str
    options: SendOptions


def in_processes(plan: SendPlan, issue_id: int, url: str, rendered: threading.Event | None) -> Outcome:
    """Deliver one issue from `plan.options.workers` processes; progress from the ledger."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked engine
    all_rendered, results = context.Event(), context.Queue()
    job = Job(plan.project.root, plan.project.environ, issue_id, url, replace(plan.options, workers=1))
    children = [
        context.Process(target=_child, args=(job, all_rendered, results), name=f"newsletter-worker-{n}")
        for n in range(plan.options.workers)
    ]
    for child in children:
        child.start()
    _watch(plan, issue_id, children, rendered, all_rendered)
    return _merged(children, results)


def _watch(
    plan: SendPlan, issue_id: int, children: list[Any], rendered: threading.Event | None, flag: Any
) -> None:
    """Until every worker has ended: pass on that the variants are stored, stop them when
    asked (SIGTERM: each finishes its message and gives its batch back), report progress."""
    ledger, stopped = DeliveryQueue(plan.project.store), False
    total = ledger.waiting(issue_id)
    done = 0
    while alive := [child for child in children if child.is_alive()]:
        if rendered is None or rendered.is_set():
            flag.set()
        if plan.stop is not None and plan.stop.is_set() and not stopped:
            stopped = True
            for child in alive:
                child.terminate()
        if plan.progress is not None:
            now_done = total - ledger.waiting(issue_id)
            plan.progress(now_done - done, total)
            done = now_done
        alive[0].join(0.2)


def _merged(children: list[Any], results: Any) -> Outcome:
    outcomes = []
    for _ in children:
        try:
            outcomes.append(results.get(timeout=5))
        except Empty:
            break
    for child in children:
        child.join()
    crashed = [c.exitcode for c in children if c.exitcode]
    if crashed or len(outcomes) < len(children):
        raise NewsletterError(
            f"a worker process ended with exit code {crashed[0] if crashed else '?'}",
            "What was sent is recorded: run send again to resume (it takes over what was in flight).",
        )
    merged = Outcome(sum(o.sent for o in outcomes))
    for worst in WORST:
        found = next((o for o in outcomes if o.outcome == worst), None)
        if found is not None:
            merged.outcome, merged.message = found.outcome, found.message
            break
    return merged


def _child(job: Job, rendered: Any, results: Any) -> None:
    """A worker process of `send --workers`: delivers `job.issue_id` until its queue is done."""
    from newsletter.delivery.send import stop_on_signals
    from newsletter.project import Project

    project = Project(job.root, environ=job.environ)
    stop = threading.Event()
    threading.Thread(target=_orphaned, args=(os.getppid(), stop), daemon=True).start()
    try:
        with stop_on_signals(stop):
            sender = Sender(project, job.url, job.options, _to_stderr)
            issue = sender.ledger.issue_by_id(job.issue_id)
            run = sender.run(issue, stop, rendered)
        results.put(Outcome(run.sent, run.outcome, run.message))
    finally:
        project.close()


def _orphaned(parent: int, stop: threading.Event) -> None:
    """`send` killed outright: its workers stop too (finishing the message in flight and
    giving their batch back), as its own connections would have."""
    while not stop.wait(0.5):
        if os.getppid() != parent:
            stop.set()


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
