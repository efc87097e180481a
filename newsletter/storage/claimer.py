"""Who holds a claim: this process's name in the ledger, and whether another is alive.

A delivery in flight names its claimer as host:pid:start. When that process is on
this host and gone (killed, crashed), its rows can be taken over at once instead of
after its lease; a claimer on another host is trusted until its lease runs out.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_time(pid: int) -> str:
    """The process's start in clock ticks since boot (Linux), so a reused pid is told apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()
    return "Z" if fields[0] in ("Z", "X") else fields[19]


_ME: dict[int, str] = {}  # by pid: a forked child is another claimer


def me() -> str:
    """This process, as it is written into the rows it claims."""
    pid = os.getpid()
    if pid not in _ME:
        _ME[pid] = f"{socket.gethostname()}:{pid}:{_start_time(pid)}"
    return _ME[pid]


def is_gone(claimer: str | None) -> bool:
    """True only when the claimer certainly no longer runs: same host, and its pid has
    exited, is a zombie, or belongs to a process started at another time."""
    if not claimer:
        return False
    host, _, rest = claimer.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    if not Path("/proc").is_dir():
        return not _signalable(pid)
    now = _start_time(pid)
    return now in ("", "Z") or (bool(started) and now != started)


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(claimer: str) -> str:
    host, _, rest = claimer.partition(":")
    return f"process {rest.partition(':')[0]} on {host}"
