"""DKIM: keys from `newsletter dkim keygen`, messages from the real MessageTemplate, and
every signature checked by dkimpy's verifier against the TXT record keygen printed
(served by a stub DNS function: no network). A bad key fails the send's pre-flight,
before anything is recorded."""

from __future__ import annotations

import base64
import hashlib
import re
import stat
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest
import sqlalchemy as sa
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter import scaffold
from newsletter.core.config import load_settings
from newsletter.core.errors import ConfigError
from newsletter.delivery import signing
from newsletter.delivery.send import SendOptions, send_schedule
from newsletter.digest.mail import ListId, MessageTemplate, Recipient
from newsletter.project import Project
from newsletter.storage.roster import Roster
from tests.conftest import NOW, THREE_READERS, CliRunnerForProject, SMTPServer

SECRET = "test-secret-key-0123456789"
WEEK = scaffold.DEMO_AT
FAST = SendOptions(retry_base=0.05, retry_cap=0.2)
SIGNED = [h.decode() for h in signing.SIGNED_HEADERS]
Dns = Callable[..., bytes | None]


def keygen(cli: CliRunnerForProject, out: Path, *args: str) -> tuple[str, str, Dns]:
    """Run `dkim keygen`: its stdout, the newsletter.toml lines it printed, and a DNS
    function that serves the TXT record it printed (and nothing else)."""
    result = cli("dkim", "keygen", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    record = re.search(r"^  (\S+) IN TXT (.+)$", result.stdout, re.MULTILINE)
    assert record is not None, result.stdout
    name, strings = record[1], re.findall(r'"([^"]*)"', record[2])
    assert all(len(s) <= 255 for s in strings)
    value = "".join(strings).encode("ascii")
    toml = result.stdout.split("Then add to newsletter.toml:\n", 1)[1]

    def dns(qname: bytes, timeout: int = 5) -> bytes | None:
        return value if qname.decode() == name else None

    return result.stdout, "\n".join(line.strip() for line in toml.strip().splitlines()), dns


def enable(project_dir: Path, toml: str) -> None:
    path = project_dir / "newsletter.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + toml + "\n", encoding="utf-8")


def a_message(name: str = "Zoë Ångström") -> bytes:
    template = MessageTemplate(
        "Crème brûlée, pâtés et crêpes : le guide complet de la pâtisserie du dimanche",
        "Hello\n\nRead it: https://example.org/a\nUnsubscribe: "
        "https://example.org/u?token=NLXUNSUBSCRIBETOKENX\n",
        "<p>Hello</p><p><a href='https://example.org/u?token=NLXUNSUBSCRIBETOKENX'>Unsubscribe</a></p>",
        "Mind & Body <digest@example.org>",
        NOW,
        ListId("Weekly", "weekly.example.org"),
    )
    token = "tok-en_123"
    return template.render(
        Recipient(
            name,
            "zoe@example.net",
            "<issue1.delivery1.abc@example.org>",
            token,
            f"https://example.org/newsletter/unsubscribe?token={token}",
            f"mailto:unsubscribe@example.org?subject=unsubscribe%20{token}",
        )
    )


def signature_tags(message: bytes) -> dict[str, str]:
    header = str(message_from_bytes(message, policy=policy.compat32)["DKIM-Signature"])
    tags = (t.split("=", 1) for t in re.sub(r"\s+", "", header).split(";") if t)
    return {k: v for k, v in tags}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"  # outside the project folder (tmp_path / "project")


# -- signing and verifying ------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_a_signed_message_verifies_with_the_published_record(
    algorithm: str, cli: CliRunnerForProject, project_dir: Path, keys: Path
):
    _, toml, dns = keygen(cli, keys / "k.pem", "--algorithm", algorithm, "--selector", "nl2026")
    enable(project_dir, toml)
    signer = signing.prepare(load_settings(project_dir, {}), {}, project_dir)
    assert signer is not None
    assert signer.warnings == ()
    message = a_message()
    signed = signer.sign(message)
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(b"\r\n" + message)  # prepended, the message itself untouched
    assert dkim.verify(signed, dnsfunc=dns)
    tags = signature_tags(signed)
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == (
        algorithm,
        "relaxed/relaxed",
        "example.org",
        "nl2026",
    )
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    present = {line.split(b":", 1)[0].lower().decode() for line in head if line[:1] not in (b" ", b"\t")}
    assert tags["h"].split(":") == [h for h in SIGNED if h in present]  # every one present, in order
    header = signed[: len(signed) - len(message)]
    assert max(len(line) for line in header.split(b"\r\n")) <= 78


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_a_changed_subject_or_body_fails_verification(
    algorithm: str, cli: CliRunnerForProject, project_dir: Path, keys: Path
):
    _, toml, dns = keygen(cli, keys / "k.pem", "--algorithm", algorithm)
    enable(project_dir, toml)
    signer = signing.prepare(load_settings(project_dir, {}), {}, project_dir)
    assert signer is not None
    signed = signer.sign(a_message())
    assert dkim.verify(signed, dnsfunc=dns)
    subject = re.search(rb"\r\nSubject: .*?\r\n(?=\S)", signed, re.DOTALL)
    assert subject is not None
    other_subject = signed.replace(subject[0], b"\r\nSubject: You have won\r\n")
    other_body = signed.replace(b"Read it:", b"Read this:")
    other_unsubscribe = signed.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    for tampered in (other_subject, other_body, other_unsubscribe):
        assert tampered != signed
        assert not dkim.verify(tampered, dnsfunc=dns)
    # relaxed/relaxed: an MTA refolding a header or padding whitespace breaks nothing
    refolded = signed.replace(b"Date: ", b"Date:    ").replace(
        b"List-Unsubscribe: <", b"List-Unsubscribe:\r\n  <"
    )
    assert refolded != signed
    assert dkim.verify(refolded, dnsfunc=dns)


def test_only_the_headers_present_are_signed(cli: CliRunnerForProject, project_dir: Path, keys: Path):
    _, toml, dns = keygen(cli, keys / "k.pem", "--algorithm", "ed25519-sha256")
    enable(project_dir, toml)
    signer = signing.prepare(load_settings(project_dir, {}), {}, project_dir)
    assert signer is not None
    template = MessageTemplate("Hi", "text", "<p>html</p>", "digest@example.org", NOW)  # no List-Id
    plain = template.render(Recipient("Ann", "ann@example.org", "<1@example.org>"))  # no unsubscribe
    signed = signer.sign(plain)
    assert dkim.verify(signed, dnsfunc=dns)
    assert signature_tags(signed)["h"].split(":") == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
    ]


def test_the_key_from_the_environment(cli: CliRunnerForProject, project_dir: Path, keys: Path):
    _, toml, dns = keygen(cli, keys / "k.pem")
    pem = (keys / "k.pem").read_text(encoding="ascii")
    enable(project_dir, "\n".join(line for line in toml.splitlines() if not line.startswith("key_file")))
    environ = {"NEWSLETTER_DKIM_KEY": pem.replace("\n", "\r\n")}  # however the secret store wraps it
    signer = signing.prepare(load_settings(project_dir, environ), environ, project_dir)
    assert signer is not None
    assert dkim.verify(signer.sign(a_message()), dnsfunc=dns)


# -- end to end ------------------------------------------------------------------


def test_every_message_of_a_send_verifies(
    cli: CliRunnerForProject,
    demo_project: Project,
    smtp_server: SMTPServer,
    keys: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    Roster(demo_project.store).import_subscribers(THREE_READERS, NOW)
    _, toml, dns = keygen(cli, keys / "k.pem")
    enable(demo_project.root, toml)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    result = cli("send", "weekly", "--at", WEEK.isoformat(), "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    received = smtp_server.handler.messages
    assert sorted(r for m in received for r in m.recipients) == [r.email for r in THREE_READERS]
    for message in received:
        assert dkim.verify(message.data, dnsfunc=dns), message.data[:600]
        parsed = message_from_bytes(message.data, policy=policy.default)
        assert parsed["To"].addresses[0].addr_spec in message.recipients
        assert "list-unsubscribe-post" in signature_tags(message.data)["h"].split(":")


def test_a_bad_key_fails_before_anything_is_recorded(
    cli: CliRunnerForProject,
    demo_project: Project,
    smtp_server: SMTPServer,
    keys: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    Roster(demo_project.store).import_subscribers(THREE_READERS, NOW)
    _, toml, _ = keygen(cli, keys / "k.pem")
    enable(demo_project.root, toml)
    (keys / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    result = cli("send", "weekly", "--at", WEEK.isoformat(), "--transport", smtp_server.url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {keys / 'k.pem'}: not a usable DKIM private key for rsa-sha256")
    assert "Hint: " in result.stderr
    assert "Traceback" not in result.output
    assert smtp_server.handler.messages == []
    with demo_project.store.engine.connect() as db:
        for table in ("issues", "issue_variants", "deliveries"):
            assert db.execute(sa.text(f"select count(*) from {table}")).scalar() == 0, table


def prepared(project_dir: Path, environ: dict[str, str] | None = None) -> signing.Signer | None:
    environ = environ or {}
    return signing.prepare(load_settings(project_dir, environ), environ, project_dir)


def test_key_problems_are_one_config_error_naming_the_key(
    cli: CliRunnerForProject, project_dir: Path, keys: Path
):
    _, toml, _ = keygen(cli, keys / "ed.pem", "--algorithm", "ed25519-sha256")
    enable(project_dir, toml.replace("ed25519-sha256", "rsa-sha256"))  # the wrong algorithm for the key
    with pytest.raises(
        ConfigError, match=r"ed\.pem: not a usable DKIM private key for rsa-sha256: .*Ed25519"
    ):
        prepared(project_dir)
    (keys / "ed.pem").unlink()
    with pytest.raises(
        ConfigError, match=r"ed\.pem: the DKIM private key \(\[dkim\] key_file\) cannot be read"
    ):
        prepared(project_dir)
    with pytest.raises(ConfigError, match="NEWSLETTER_DKIM_KEY: set, and so is"):
        prepared(project_dir, {"NEWSLETTER_DKIM_KEY": "x"})


def test_a_key_inside_the_project_is_refused_in_git_and_warned_about_otherwise(
    cli: CliRunnerForProject, project_dir: Path
):
    _, toml, _ = keygen(cli, project_dir / "secret" / "k.pem")
    enable(project_dir, toml)
    signer = prepared(project_dir)
    assert signer is not None
    assert any("inside the project folder" in w for w in signer.warnings)
    (project_dir / ".git").mkdir()
    with pytest.raises(ConfigError, match="inside the git work tree"):
        prepared(project_dir)
    result = cli("dkim", "keygen", "--out", str(project_dir / "another.pem"))
    assert result.exit_code == 1
    assert "inside the git work tree" in result.stderr
    assert not (project_dir / "another.pem").exists()


def test_misaligned_domain_and_loose_mode_are_warnings(
    cli: CliRunnerForProject, project_dir: Path, keys: Path
):
    _, toml, _ = keygen(cli, keys / "k.pem", "--domain", "mail.example.com")
    enable(project_dir, toml)
    (keys / "k.pem").chmod(0o644)
    signer = prepared(project_dir)
    assert signer is not None
    assert signer.domain == "mail.example.com"
    assert [w.split(" ")[:3] for w in signer.warnings] == [
        ["the", "DKIM", "key"],
        ["[dkim]", "domain", "mail.example.com"],
    ]
    assert "readable by others" in signer.warnings[0]
    assert "not aligned with the From domain example.org" in signer.warnings[1]


# -- settings -----------------------------------------------------------------------


def test_off_unless_domain_and_selector_are_set(project_dir: Path):
    assert prepared(project_dir) is None
    assert prepared(project_dir, {"NEWSLETTER_DKIM_KEY": "ignored when off"}) is None


@pytest.mark.parametrize(
    ("lines", "key", "expected"),
    [
        ('domain = "example.org"', "dkim", "both domain and selector"),
        ('key_file = "/k.pem"', "dkim", "a key_file alone signs nothing"),
        (
            'domain = "example.org"\nselector = "s"\nalgorithm = "rsa-sha1"',
            "dkim.algorithm",
            "'rsa-sha256' or",
        ),
        ('domain = "not a domain"\nselector = "s"', "dkim.domain", "a domain name"),
        ('domain = "example.org"\nselector = "s_1"', "dkim.selector", "a selector"),
        ('domain = "example.org"\nselector = "s"\nkey = "-----BEGIN"', "dkim.key", "unknown key"),
    ],
)
def test_bad_settings_are_config_errors_at_load(project_dir: Path, lines: str, key: str, expected: str):
    enable(project_dir, f"[dkim]\n{lines}")
    with pytest.raises(ConfigError) as caught:
        load_settings(project_dir, {})
    assert caught.value.key == key
    assert expected in caught.value.expected


def test_the_environment_sets_dkim_settings(project_dir: Path, keys: Path, cli: CliRunnerForProject):
    keygen(cli, keys / "k.pem")
    environ = {
        "NEWSLETTER_DKIM_DOMAIN": "Example.ORG",
        "NEWSLETTER_DKIM_SELECTOR": "newsletter",
        "NEWSLETTER_DKIM_KEY_FILE": str(keys / "k.pem"),
    }
    signer = prepared(project_dir, environ)
    assert signer is not None
    assert (signer.domain, signer.selector, signer.algorithm) == ("example.org", "newsletter", "rsa-sha256")


# -- keygen ---------------------------------------------------------------------------


def test_keygen_writes_0600_and_never_overwrites(cli: CliRunnerForProject, keys: Path):
    out, toml, _ = keygen(cli, keys / "k.pem")
    path = keys / "k.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert "newsletter._domainkey.example.org. IN TXT" in out  # the From domain, the default selector
    assert f'key_file = "{path}"' in toml
    before = path.read_bytes()
    again = cli("dkim", "keygen", "--out", str(path))
    assert again.exit_code == 1
    assert "already exists; not overwriting" in again.stderr
    assert path.read_bytes() == before


def test_keygen_rsa_record_is_split_into_dns_strings(cli: CliRunnerForProject, keys: Path):
    out, _, dns = keygen(cli, keys / "k.pem", "--selector", "s1", "--domain", "news.example.org")
    record = re.search(r"^  s1\._domainkey\.news\.example\.org\. IN TXT (.+)$", out, re.MULTILINE)
    assert record is not None
    strings = re.findall(r'"([^"]*)"', record[1])
    assert len(strings) == 2
    assert len(strings[0]) == 255
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=MIIB")  # SubjectPublicKeyInfo, 2048 bits
    assert dns(b"s1._domainkey.news.example.org.") is not None


def test_keygen_outside_a_project_needs_a_domain(tmp_path: Path, keys: Path):
    elsewhere = CliRunnerForProject(tmp_path / "nowhere")
    result = elsewhere("dkim", "keygen", "--out", str(keys / "k.pem"))
    assert result.exit_code == 2
    assert "pass --domain" in result.output
    result = elsewhere("dkim", "keygen", "--out", str(keys / "k.pem"), "--domain", "example.net")
    assert result.exit_code == 0, result.output
    assert "newsletter._domainkey.example.net." in result.stdout


def test_send_without_dkim_is_unsigned(demo_project: Project, smtp_server: SMTPServer):
    sender = Project(demo_project.root, environ={"NEWSLETTER_SECRET_KEY": SECRET})
    try:
        Roster(sender.store).import_subscribers(THREE_READERS[:1], NOW)
        summary = send_schedule(sender, "weekly", WEEK, smtp_server.url, FAST)
    finally:
        sender.close()
    assert summary.counts["sent"] == 1
    assert b"DKIM-Signature" not in smtp_server.handler.messages[0].data


def test_an_ed25519_seed_as_dknewkey_writes_it(cli: CliRunnerForProject, project_dir: Path, keys: Path):
    """dkimpy's own `dknewkey` writes an Ed25519 key as its 32-byte seed in base64."""
    from cryptography.hazmat.primitives import serialization

    _, toml, dns = keygen(cli, keys / "k.pem", "--algorithm", "ed25519-sha256")
    key = serialization.load_pem_private_key((keys / "k.pem").read_bytes(), password=None)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    (keys / "k.pem").unlink()
    (keys / "k.pem").write_text(base64.b64encode(seed).decode() + "\n")
    enable(project_dir, toml)
    signer = prepared(project_dir)
    assert signer is not None
    assert dkim.verify(signer.sign(a_message()), dnsfunc=dns)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"=", b"\x00", b"\xc3\xa9"]))
)
def test_relaxed_body_is_dkimpys(pieces: list[bytes]):
    body = b"".join(pieces)
    assert signing.relaxed_body(body) == Relaxed.canonicalize_body(body)


# -- issue 24: a key for init's placeholder domain -------------------------------------


@pytest.mark.parametrize("domain", [None, "example.com", "news.example.net", "site.test"])
def test_keygen_for_a_placeholder_domain_is_an_error(
    cli: CliRunnerForProject, keys: Path, monkeypatch: pytest.MonkeyPatch, domain: str | None
):
    monkeypatch.delenv("NEWSLETTER_ALLOW_PLACEHOLDERS")
    result = cli("dkim", "keygen", "--out", str(keys / "k.pem"), *(["--domain", domain] if domain else []))
    assert result.exit_code == 1
    shown = domain or "example.org"  # init's [email] from
    assert f"Error: {shown} is a placeholder domain" in result.stderr
    assert "pass --domain YOUR-DOMAIN" in result.stderr
    assert not (keys / "k.pem").exists()


def test_keygen_for_a_real_domain_needs_no_permission(
    cli: CliRunnerForProject, keys: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("NEWSLETTER_ALLOW_PLACEHOLDERS")
    result = cli("dkim", "keygen", "--out", str(keys / "k.pem"), "--domain", "mindandbody.news")
    assert result.exit_code == 0, result.stderr
    assert "newsletter._domainkey.mindandbody.news" in result.stdout


# -- issue 22: bh= once per variant, the headers signed per message ----------------------------

FIXED = st.lists(st.sampled_from([b" ", b"  ", b"\t", b"\r\n", b"a", b"=", b"\xc3\xa9", b"x\r\n\r\n"]))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(FIXED.map(b"".join), min_size=1, max_size=5).filter(lambda f: f[-1].strip(b"\r\n") != b""),
    st.lists(st.from_regex(r"[A-Za-z0-9_.-]{0,30}", fullmatch=True), min_size=4, max_size=4),
)
def test_the_body_hash_in_parts_is_dkimpys_of_the_whole(fixed: list[bytes], tokens: list[str]):
    readers = [f"=\r\n{t}=\r\n".encode() for t in tokens[: len(fixed) - 1]]
    whole = fixed[0] + b"".join(r + f for r, f in zip(readers, fixed[1:], strict=True))
    expected = hashlib.sha256(Relaxed.canonicalize_body(whole)).digest()
    assert signing.BodyHash(fixed).digest(readers) == expected


def test_a_readers_part_that_would_join_a_fixed_line_is_refused():
    body_hash = signing.BodyHash([b"a \r\n", b"b\r\n"])
    for bad in (b"", b"\r\nx", b"to ken", b"to\tken"):
        with pytest.raises(ValueError, match="canonical part"):
            body_hash.digest([bad])


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_a_message_signed_with_its_variants_body_hash_verifies(
    cli: CliRunnerForProject, project_dir: Path, keys: Path, algorithm: str
):
    _, toml, dns = keygen(cli, keys / "k.pem", "--algorithm", algorithm)
    enable(project_dir, toml)
    signer = prepared(project_dir)
    assert signer is not None
    template = MessageTemplate(
        "Subject",
        "Hi  there \nbye: NLXUNSUBSCRIBETOKENX\n",
        "<p>x NLXPREFERENCESTOKENX</p>",
        "a@example.org",
        NOW,
    )
    body_hash = signing.BodyHash(template.fixed_body())
    for n in range(3):
        reader = Recipient(f"R{n}", f"r{n}@example.net", f"<{n}@example.org>", f"tok{n}", "", "", f"pref-{n}")
        message = template.render(reader)
        signed = signer.sign(message, body_hash=body_hash.digest(template.readers_body(reader)))
        assert signed == signer.sign(message, now=int(signature_tags(signed)["t"]))
        assert dkim.verify(signed, dnsfunc=dns)
