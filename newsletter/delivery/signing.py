"""DKIM: every outgoing message signed for the [dkim] domain (RFC 6376, RFC 8463).

dkimpy parses the header, canonicalises it (relaxed/relaxed) and hashes the signed
header fields exactly as its verifier does; the body is canonicalised by `relaxed_body`
(dkimpy's rules without its regular expressions, five times faster, tested equal). The
private-key operation is done by `cryptography` (OpenSSL, GIL released) with a key parsed
once per send (`prepare`): dkimpy's own RSA is pure Python, about 5 ms a message holding
the GIL, 20 times slower. A 50 KB digest signs in about 0.5 ms.

The private key comes from `[dkim] key_file` (a file outside the project) or the
environment variable NEWSLETTER_DKIM_KEY, never from newsletter.toml itself. A key that
is missing, unreadable, malformed or of the wrong type is one `ConfigError` naming the
file or the variable, raised by `prepare` at the send's pre-flight, before anything is
recorded. dkimpy and cryptography are imported only here, and only when used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.core.errors import ConfigError, NewsletterError, OutputError

if TYPE_CHECKING:
    from newsletter.core.config import DkimSettings, Settings

KEY_VARIABLE = "NEWSLETTER_DKIM_KEY"
RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
ALGORITHMS = (RSA, ED25519)
RSA_BITS = 2048
MIN_RSA_BITS = 1024  # what receivers (and dkimpy's verifier) accept at least
# Signed in this order when present: RFC 6376's core, RFC 2369/8058's list headers
# (one-click unsubscribe needs both List-Unsubscribe fields signed), and MIME.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
    b"feedback-id",  # Gmail reads it only when the signature covers it
)
CANONICALIZATION = b"relaxed/relaxed"
DNS_STRING = 255  # the longest character-string in a TXT record
B64_LINE = 72


@dataclass(frozen=True)
class Signer:
    """Signs messages for one domain and selector with a key prepared once."""

    domain: str
    selector: str
    algorithm: str
    sign_digest: Callable[[bytes], bytes]  # SHA-256 digest of the signed headers -> signature
    warnings: tuple[str, ...] = field(default=())

    def sign(self, message: bytes, now: float | None = None, body_hash: bytes | None = None) -> bytes:
        """The message with its DKIM-Signature header prepended (CRLF line endings).
        `body_hash`, the SHA-256 of its canonical body (`BodyHash`), saves hashing it here."""
        import dkim
        from dkim.canonicalization import CanonicalizationPolicy

        policy = CanonicalizationPolicy.from_c_value(CANONICALIZATION)
        head, blank, body = message.partition(b"\r\n\r\n")
        if blank:  # ours: CRLF throughout, so only the header needs parsing (a third of the time)
            headers, _ = dkim.rfc822_parse(head + blank)
        else:
            headers, body = dkim.rfc822_parse(message)
        present = {name.lower() for name, _ in headers}
        include = [name for name in SIGNED_HEADERS if name in present]
        body_hash = base64.b64encode(body_hash or hashlib.sha256(relaxed_body(body)).digest())
        tags = [
            (b"v", b"1"),
            (b"a", self.algorithm.encode("ascii")),
            (b"c", CANONICALIZATION),
            (b"d", self.domain.encode("ascii")),
            (b"s", self.selector.encode("ascii")),
            (b"t", str(int(time.time() if now is None else now)).encode("ascii")),
            (b"h", b" : ".join(include)),  # spaces: fold may break the line there
            (b"bh", body_hash),
        ]
        # Folded before hashing, and b= on lines of its own after: the bytes hashed are
        # the bytes sent (relaxed canonicalisation; the verifier blanks b= the same way).
        unsigned: bytes = dkim.fold(
            b"; ".join(b"=".join(t) for t in tags) + b";", namelen=len(b"DKIM-Signature")
        )
        unsigned += b"\r\n b="
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher,
            policy,
            policy.canonicalize_headers(headers),
            include,
            (b"DKIM-Signature", b" " + unsigned),
            None,
        )
        signature = base64.b64encode(self.sign_digest(hasher.digest()))
        lines = [signature[i : i + B64_LINE] for i in range(0, len(signature), B64_LINE)]
        return b"DKIM-Signature: " + unsigned + b"\r\n  ".join(lines) + b"\r\n" + message


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, as dkimpy's `Relaxed.canonicalize_body` does it, with `bytes.replace`
    for its two regular expressions: a digest's body has thousands of spaces, and this is
    five times faster on it. The same bytes out for any body (tests/test_dkim.py checks it
    against dkimpy's on generated ones)."""
    from dkim.canonicalization import correct_empty_body, strip_trailing_lines

    result: bytes = correct_empty_body(strip_trailing_lines(relaxed_lines(body)))
    return result


def relaxed_lines(body: bytes) -> bytes:
    """The line-by-line rules of relaxed canonicalisation (all but the empty lines at the end)."""
    body = body.replace(b"\t", b" ")  # every run of WSP becomes one SP ...
    while b"  " in body:
        body = body.replace(b"  ", b" ")
    return body.replace(b" \r\n", b"\r\n")  # ... and none is left at the end of a line


class BodyHash:
    """The body hash (bh=) of the messages of one variant, its fixed parts canonicalised
    once: each reader's message differs only by tokens, each on a line of its own, and the
    relaxed rules are line by line, so canonical(fixed, reader's, fixed ...) is the fixed
    parts' canonical forms with the reader's parts between them as they are. Only the
    SHA-256 runs per message (canonicalising was 60% of signing a digest's body)."""

    def __init__(self, fixed: list[bytes]) -> None:
        *middle, last = fixed
        if not last.strip(b"\r\n"):  # the end's empty lines would reach into a reader's part
            raise ValueError("a body that ends in a reader's part cannot be hashed in parts")
        self.first = hashlib.sha256(relaxed_lines(middle[0]) if middle else relaxed_body(last))
        self.rest = [relaxed_lines(piece) for piece in middle[1:]] + ([relaxed_body(last)] if middle else [])

    def digest(self, readers: list[bytes]) -> bytes:
        """SHA-256 of the canonical body with `readers` between the fixed parts; each must be
        canonical already and join no line of a fixed part's to its end (no space or tab, not
        empty and not starting a line break: tokens are URL-safe, after a soft break's `=`)."""
        if len(readers) != len(self.rest) or not all(map(_apart, readers)):
            raise ValueError("expected one canonical part for each gap between fixed parts")
        hasher = self.first.copy()
        for reader, fixed in zip(readers, self.rest, strict=True):
            hasher.update(reader)
            hasher.update(fixed)
        return hasher.digest()


def _apart(reader: bytes) -> bool:
    return bool(reader) and reader[:1] not in b"\r\n" and b" " not in reader and b"\t" not in reader


# -- the key -------------------------------------------------------------------


def prepare(settings: Settings, environ: Mapping[str, str], root: Path) -> Signer | None:
    """The send's signer, or None when [dkim] is off. Every problem with the key is a
    ConfigError here, at pre-flight; warnings (a key inside the project, readable by
    others, a d= not aligned with From) are returned on the signer."""
    dkim = settings.dkim
    if not dkim.enabled:
        return None
    data, source, warnings = _key_data(dkim, environ, root)
    sign_digest = load_key(data, dkim.algorithm, source)
    warnings += alignment_warnings(settings.email.from_, dkim.domain)
    return Signer(dkim.domain, dkim.selector, dkim.algorithm, sign_digest, tuple(warnings))


def _key_data(dkim: DkimSettings, environ: Mapping[str, str], root: Path) -> tuple[bytes, str, list[str]]:
    text = environ.get(KEY_VARIABLE, "")
    if text and dkim.key_file:
        raise ConfigError(
            KEY_VARIABLE,
            "",
            "set, and so is [dkim] key_file in newsletter.toml: expected one of them",
            f"Keep the key in one place: unset {KEY_VARIABLE} or remove key_file.",
        )
    if text:
        return text.encode("utf-8"), KEY_VARIABLE, []
    if not dkim.key_file:
        raise ConfigError(
            "newsletter.toml",
            "dkim.key_file",
            f"missing; [dkim] is on (domain and selector set) and {KEY_VARIABLE} is not set",
            "Point key_file at the private key (`newsletter dkim keygen` makes one), "
            f"or put the PEM text in {KEY_VARIABLE}.",
        )
    path = key_path(dkim.key_file, root)
    warnings = place_warnings(path, root)
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as e:
        raise ConfigError(
            str(path),
            "",
            f"the DKIM private key ([dkim] key_file) cannot be read: {e.strerror or e}",
            "Check the path and that this user may read the file.",
        ) from e
    if mode & 0o077:
        warnings.append(f"the DKIM key {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    return data, str(path), warnings


def key_path(key_file: str, root: Path) -> Path:
    """`~` expanded; a relative path is relative to the project."""
    path = Path(key_file).expanduser()
    return path if path.is_absolute() else root / path


def place_warnings(path: Path, root: Path) -> list[str]:
    """A private key must never be committed: one inside the project's git work tree is
    refused, one inside the project folder otherwise only warned about."""
    resolved, project = path.resolve(), root.resolve()
    if not resolved.is_relative_to(project):
        return []
    tree = git_work_tree(project)
    if tree is not None:
        raise ConfigError(
            str(path),
            "",
            f"the DKIM private key is inside the git work tree {tree}; it could be committed",
            "Move it outside the project (for example ~/.config/newsletter/) and set "
            f"[dkim] key_file to that path, or use {KEY_VARIABLE}.",
        )
    return [f"the DKIM key {path} is inside the project folder; keep it elsewhere so it is never shared"]


def git_work_tree(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def load_key(data: bytes, algorithm: str, source: str) -> Callable[[bytes], bytes]:
    """Parse the private key once; the returned function signs a SHA-256 digest."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

    def bad(reason: str) -> ConfigError:
        return ConfigError(
            source,
            "",
            f"not a usable DKIM private key for {algorithm}: {reason}",
            "Use the PEM file `newsletter dkim keygen` writes (or its text in "
            f"{KEY_VARIABLE}), and set [dkim] algorithm to the key's type.",
        )

    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text.replace(b"\r\n", b"\n"), password=None)
        elif algorithm == ED25519:  # dknewkey's format: the 32-byte seed in base64
            key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
        else:
            raise bad("expected PEM text (-----BEGIN PRIVATE KEY-----)")
    except TypeError as e:  # a key protected by a password
        raise bad(f"it is encrypted ({e}); DKIM keys are read without a password") from e
    except (ValueError, binascii.Error) as e:
        raise bad(str(e) or "the PEM data could not be parsed") from e
    if algorithm == RSA:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise bad(f"it is a {_kind(key)} key, not RSA")
        if key.key_size < MIN_RSA_BITS:
            raise bad(f"{key.key_size}-bit RSA; receivers want at least {MIN_RSA_BITS} (use {RSA_BITS})")
        rsa_key = key
        pkcs1, prehashed = padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        return lambda digest: rsa_key.sign(digest, pkcs1, prehashed)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise bad(f"it is a {_kind(key)} key, not Ed25519")
    return key.sign  # RFC 8463: PureEdDSA over the SHA-256 digest


def _kind(key: object) -> str:
    return type(key).__name__.removeprefix("_").replace("PrivateKey", "") or "different"


def alignment_warnings(from_header: str, domain: str, label: str = "[dkim] domain") -> list[str]:
    """DMARC's relaxed alignment, approximately: `domain` (d=, or the return path's for
    SPF) is the From domain, a parent of it or a child of it."""
    from newsletter.core.addresses import parse_mailbox

    from_domain = parse_mailbox(from_header)[1].rsplit("@", 1)[1].lower()
    domain = domain.lower()
    if from_domain == domain or from_domain.endswith(f".{domain}") or domain.endswith(f".{from_domain}"):
        return []
    return [
        f"{label} {domain} is not aligned with the From domain {from_domain}: "
        "DMARC (Gmail, Yahoo) wants it to be the From domain or its parent"
    ]


def return_path_warnings(settings: Settings) -> list[str]:
    """The envelope sender's domain, which SPF checks, against the From domain."""
    from newsletter.core.addresses import parse_mailbox

    from_domain = parse_mailbox(settings.email.from_)[1].rsplit("@", 1)[1]
    envelope = settings.bounces.sender("token", from_domain)
    label = "[bounces] return_path domain"
    return alignment_warnings(settings.email.from_, envelope.rsplit("@", 1)[1], label)


def preflight(
    settings: Settings, environ: Mapping[str, str], root: Path, notify: Callable[[str], None]
) -> Signer | None:
    """`prepare` for `send`, and the return path's alignment: the warnings go to `notify`."""
    signer = prepare(settings, environ, root)
    for warning in [*(signer.warnings if signer else ()), *return_path_warnings(settings)]:
        notify(f"warning: {warning}")
    return signer


# -- keygen --------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes  # PKCS#8, unencrypted
    public: str  # the p= of the DNS record, base64
    algorithm: str

    @property
    def key_type(self) -> str:
        return "rsa" if self.algorithm == RSA else "ed25519"


def generate(algorithm: str = RSA) -> KeyPair:
    """A new key pair: RSA-2048 or Ed25519."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        # p= for RSA is the SubjectPublicKeyInfo in DER (what `openssl rsa -pubout` writes).
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif algorithm == ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
        # RFC 8463: p= for ed25519 is the raw 32-byte public key.
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(pem, base64.b64encode(public).decode("ascii"), algorithm)


def txt_value(pair: KeyPair) -> str:
    return f"v=DKIM1; k={pair.key_type}; p={pair.public}"


def txt_strings(value: str) -> list[str]:
    """A TXT value cut into the ≤255-character strings a record is made of."""
    return [value[i : i + DNS_STRING] for i in range(0, len(value), DNS_STRING)]


def dns_record(selector: str, domain: str, pair: KeyPair) -> str:
    """The record to publish, zone-file style: `S._domainkey.D. IN TXT "..." "..."`."""
    quoted = " ".join(f'"{s}"' for s in txt_strings(txt_value(pair)))
    return f"{selector}._domainkey.{domain}. IN TXT {quoted}"


def write_key(path: Path, pem: bytes) -> None:
    """Mode 0600, and never over an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise NewsletterError(
            f"{path} already exists; not overwriting a key",
            "Choose another --out (a new selector for a new key), or remove the old file yourself.",
        ) from e
    except OSError as e:
        raise OutputError(str(path), e.strerror or str(e)) from e
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)


def default_key_path(selector: str, domain: str, environ: Mapping[str, str]) -> Path:
    """Outside any project: $XDG_CONFIG_HOME/newsletter/dkim/DOMAIN.SELECTOR.pem."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "newsletter" / "dkim" / f"{domain}.{selector}.pem"
