"""The bounce mailbox over IMAPS against a real server: a private Dovecot.

Debian's dovecot-imapd (`.ci/run` and `make test` install it; the machine's own
service is never configured or started): its own config, certificate, runtime
folder and Maildir under a temp folder, IMAPS on a random 127.0.0.1 port, one
user with a password. A real bounce is read through `newsletter bounces`' IMAP
code: TLS checked against the test's CA, the mail flagged and never deleted, a
second read doing nothing; a mail that cannot be read is reported by its UID and the
rest still read."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from newsletter.delivery.bounces import read_mailbox
from newsletter.delivery.mailbox import MailboxError
from newsletter.project import Project
from tests.conftest import NOW, SECRET, SMTPServer, free_port
from tests.test_bounces import deliver, dsn, return_path, status_of
from tests.test_bounces_untrusted import UNREADABLE

DOVECOT = shutil.which("dovecot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
PASSWORD = "bounce-reader-password"
CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain
auth_failure_delay = 0
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
"""

pytestmark = [
    pytest.mark.skipif(
        DOVECOT is None, reason="Debian's dovecot-imapd is not installed (.ci/run installs it)"
    ),
    pytest.mark.timeout(60),
]


@dataclass
class Dovecot:
    root: Path
    port: int

    @property
    def cafile(self) -> Path:
        return self.root / "cert.pem"

    def url(self, folder: str = "INBOX") -> str:
        return f"imaps://bounces@127.0.0.1:{self.port}/{folder}?cafile={self.cafile}"

    def drop(self, name: str, data: bytes) -> None:
        """A mail delivered into the user's INBOX, as the MTA's local delivery would."""
        new = self.root / "mail" / "bounces" / "new"
        (new / name).write_bytes(data)
        owner = pwd.getpwnam("nobody")
        os.chown(new / name, owner.pw_uid, owner.pw_gid)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if os.geteuid() != 0:
        pytest.skip("a private Dovecot instance must be started as root (CI runs as root)")
    assert DOVECOT is not None
    root = Path(tempfile.mkdtemp(prefix="newsletter-imap-"))  # its users must reach it
    root.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    instance = Dovecot(root, free_port())
    _certificate(root)
    for sub in ("cur", "new", "tmp"):
        (root / "mail" / "bounces" / sub).mkdir(parents=True)
    for folder in (root / "mail", root / "mail" / "bounces", *(root / "mail" / "bounces").iterdir()):
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    (root / "users").write_text(f"bounces:{{PLAIN}}{PASSWORD}::::::\n")
    conf = root / "dovecot.conf"
    conf.write_text(CONF.format(root=root, port=instance.port, uid=nobody.pw_uid, gid=nobody.pw_gid))
    server = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(instance, server)
        yield instance
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
        if server.poll() is None:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


def _certificate(root: Path) -> None:
    """A self-signed certificate for 127.0.0.1: the server's, and the client's CA file."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(root / "key.pem")]
        + ["-out", str(root / "cert.pem")],
        check=True,
        capture_output=True,
    )


def _wait_for(instance: Dovecot, server: subprocess.Popen[str], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dovecot exited: {server.stderr.read() if server.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", instance.port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"dovecot is not answering on 127.0.0.1:{instance.port}:\n{instance.log()}")


def reader(sender: Project) -> Project:
    return Project(sender.root, environ={**SECRET, "NEWSLETTER_BOUNCES_PASSWORD": PASSWORD})


def test_a_bounce_is_read_over_imaps_flagged_and_kept(
    sender: Project, smtp_server: SMTPServer, dovecot: Dovecot
):
    deliver(sender, smtp_server)
    dovecot.drop("1.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    dovecot.drop("2.note", b"From: someone@example.org\r\nSubject: hello\r\n\r\nNot a bounce.\r\n")
    project = reader(sender)
    summary = read_mailbox(project, dovecot.url(), NOW)
    assert summary.counts["hard"] == 1 and summary.suppressed == ["bob@example.org: bounced"]
    assert len(summary.left) == 1 and summary.unhandled == 1  # the note: reported, put aside
    assert status_of(sender, "bob@example.org") == "bounced"
    again = read_mailbox(project, dovecot.url(), NOW)
    assert again.counts.get("hard", 0) == 0  # flagged NewsletterProcessed: not read again
    assert again.left == [] and again.unhandled == 1  # flagged NewsletterUnhandled: reported once
    box = dovecot.root / "mail" / "bounces"
    flags = sorted(path.name.rsplit(":2,", 1)[1] for path in (box / "cur").iterdir())
    assert flags == ["Sa", "b"]  # nothing deleted: the bounce \\Seen and keyword a, the note unseen and b
    assert "0 NewsletterProcessed" in (box / "dovecot-keywords").read_text()
    assert "1 NewsletterUnhandled" in (box / "dovecot-keywords").read_text()
    project.close()


def test_a_mail_that_cannot_be_read_is_reported_by_its_uid_and_the_rest_read(
    sender: Project, smtp_server: SMTPServer, dovecot: Dovecot
):
    deliver(sender, smtp_server)
    dovecot.drop("1.broken", UNREADABLE)
    dovecot.drop("2.bounce", dsn(return_path(smtp_server, "bob@example.org"), "bob@example.org", "5.1.1"))
    project = reader(sender)
    summary = read_mailbox(project, dovecot.url(), NOW)
    assert summary.counts["hard"] == 1 and status_of(sender, "bob@example.org") == "bounced"
    [left] = summary.left  # named by its UID (the order Dovecot numbers new mails in is its own)
    assert re.fullmatch(r"UID \d+: cannot be read \(IndexError: .*\)", left)
    again = read_mailbox(project, dovecot.url(), NOW)  # flagged NewsletterUnhandled: counted, not reported
    assert again.left == [] and again.unhandled == 1 and not again.counts
    project.close()


def test_a_wrong_folder_certificate_or_password_is_one_clear_error(sender: Project, dovecot: Dovecot):
    project = reader(sender)
    with pytest.raises(MailboxError, match="no folder 'Bounces'"):
        read_mailbox(project, dovecot.url("Bounces"), NOW)
    untrusted = dovecot.url().split("?")[0]  # the system's CAs: the test's certificate is not among them
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        read_mailbox(project, untrusted, NOW)
    project.close()
    wrong = Project(sender.root, environ={**SECRET, "NEWSLETTER_BOUNCES_PASSWORD": "not it"})
    with pytest.raises(
        MailboxError, match=rf"bounces@127.0.0.1:{dovecot.port}/INBOX: cannot be read .*AUTHENTICATIONFAILED"
    ):
        read_mailbox(wrong, dovecot.url(), NOW)
    wrong.close()
