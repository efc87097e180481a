"""A private instance of Debian's Postfix on a random 127.0.0.1 port, never the system's mail.

Its own main.cf and master.cf, queue, data directory and Maildirs under a fresh temp folder,
started with `postfix -c DIR start` and stopped (then aborted if need be) afterwards. The end
to end test (tests/test_postfix.py) gives it Maildirs and bounces; the send benchmark
(benchmarks/bench.py imports this module) runs it as a sink: `SINK_CF` discards everything
it accepts, so what is measured is Postfix's SMTP acceptance and queueing, not delivery.
It must run as root; its daemons run as `postfix` and virtual(8) as `nobody`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POSTFIX = shutil.which("postfix", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")

# What every instance shares; `extra` (formatted with the same values) says where mail goes.
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{domain}
mydomain = {domain}
myorigin = {domain}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
notify_classes =
biff = no
smtputf8_enable = yes
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
"""

# A sink: every message accepted from 127.0.0.1 is queued as usual, then discarded by discard(8).
SINK_CF = """\
default_transport = discard:this instance is a benchmark's sink
relay_transport = discard:this instance is a benchmark's sink
"""

# Only the services an instance uses; nothing chrooted (the paths are absolute).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@dataclass
class Postfix:
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"

    def wait_for_mail(self, user: str, count: int, seconds: float = 20.0) -> list[Path]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = (
                sorted((self.maildir(user) / "new").glob("*"))
                if (self.maildir(user) / "new").is_dir()
                else []
            )
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"no {count} mails for {user} within {seconds} s; maillog:\n{self.log()[-3000:]}"
        )


def unavailable() -> str:
    """Why no instance can run here ("" if one can)."""
    if POSTFIX is None:
        return "Debian's postfix is not installed (`make postfix` or .ci/run installs it)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root (CI runs as root)"
    return ""


@contextlib.contextmanager
def running(
    extra: str = SINK_CF, domain: str = "test.example", conf: dict[str, str] | None = None
) -> Iterator[Postfix]:
    """An instance whose main.cf is MAIN_CF plus `extra`, and `conf` (file name: text)
    beside it in its conf folder; stopped and its folder removed afterwards."""
    assert POSTFIX is not None, unavailable()
    # Its own folder, not under pytest's: a pytest session started meanwhile sets
    # /tmp/pytest-of-root back to 0700, and virtual(8), user nobody, could no longer reach it.
    base = Path(tempfile.mkdtemp(prefix="newsletter-postfix-"))
    try:
        root, port = base / "postfix", free_port()
        nobody, owner = pwd.getpwnam("nobody"), pwd.getpwnam("postfix")
        for sub in ("conf", "queue", "data", "mail"):
            (root / sub).mkdir(parents=True)
        os.chown(root / "data", owner.pw_uid, owner.pw_gid)
        os.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
        values = {"root": root, "domain": domain, "uid": nobody.pw_uid, "gid": nobody.pw_gid, "port": port}
        (root / "conf" / "main.cf").write_text((MAIN_CF + extra).format(**values))
        (root / "conf" / "master.cf").write_text(MASTER_CF.format(**values))
        for name, text in (conf or {}).items():
            (root / "conf" / name).write_text(text)
        with traversable(base):
            yield from _started(Postfix(root, port), [POSTFIX, "-c", str(root / "conf")])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _started(instance: Postfix, command: list[str]) -> Iterator[Postfix]:
    started = subprocess.run([*command, "start"], capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, f"postfix start failed: {started.stderr}\n{instance.log()}"
        wait_for_port(instance)
        yield instance
    finally:
        stop(command, instance.root)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def traversable(path: Path) -> Iterator[None]:
    """Postfix's daemons (user postfix) and virtual(8) (user nobody) open absolute paths
    under the temp folder, whose parents may be 0700: let others pass through (o+x, not
    list) while the instance runs."""
    changed = []
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if folder.stat().st_uid == os.getuid() and not mode & 0o001:
            folder.chmod(mode | 0o001)
            changed.append((folder, mode))
    try:
        yield
    finally:
        for folder, mode in changed:
            with contextlib.suppress(FileNotFoundError):
                folder.chmod(mode & 0o7777)


def wait_for_port(instance: Postfix, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", instance.port), timeout=1) as s,
        ):
            if s.recv(100).startswith(b"220"):
                return
        time.sleep(0.1)
    raise AssertionError(f"postfix is not answering on 127.0.0.1:{instance.port}:\n{instance.log()[-3000:]}")


def stop(command: list[str], root: Path) -> None:
    """`postfix stop`, then `abort` if the master is still there after 10 s."""
    pid_file = root / "queue" / "pid" / "master.pid"
    pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    subprocess.run([*command, "stop"], capture_output=True, timeout=60)
    deadline = time.monotonic() + 10
    while pid is not None and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid is not None and alive(pid):
        subprocess.run([*command, "abort"], capture_output=True, timeout=60)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"  # a zombie has exited
    except (FileNotFoundError, IndexError):
        return False
