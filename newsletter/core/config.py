"""newsletter.toml validated into typed settings (the schedule files: schedules.py).

Every problem names the file, the key and what was expected. Environment
variables `NEWSLETTER_<SECTION>_<KEY>` override the file; secrets only ever
come from the environment.
"""

from __future__ import annotations

import difflib
import os
import re
import string
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsletter.core import transport_url
from newsletter.core.addresses import normalize_email, parse_mailbox
from newsletter.core.durations import parse_duration
from newsletter.core.errors import ConfigError
from newsletter.core.languages import check_language
from newsletter.core.theme import ThemeSettings
from newsletter.core.translations import N_

SETTINGS_FILE = "newsletter.toml"
SCHEDULES_DIR = "schedules"
M = TypeVar("M", bound=BaseModel)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError("an IANA time zone such as 'Europe/London'") from e
    return value


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("an absolute http(s) URL such as 'https://example.org'")
    return value.rstrip("/")


ARTICLE_URL_FIELDS = ("base_url", "category", "slug", "year", "month", "day")
_ALLOWED = " ".join(f"{{{name}}}" for name in ARTICLE_URL_FIELDS)


def _check_article_url(value: str) -> str:
    """Checked when the settings load, so a typo fails every command at once
    rather than each ingest with a KeyError."""
    unknown = sorted(_placeholders(value) - set(ARTICLE_URL_FIELDS))
    if unknown:
        shown = " ".join(f"{{{name}}}" for name in unknown)
        raise ValueError(f"only the placeholders {_ALLOWED}; unknown: {shown}")
    try:  # a format spec such as {year:d} is only found by formatting
        value.format(**dict.fromkeys(ARTICLE_URL_FIELDS, "x"))
    except (ValueError, KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"a URL pattern with plain placeholders such as {{slug}} ({e})") from e
    return value


def _placeholders(pattern: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as e:
        raise ValueError(
            f"a URL pattern with balanced braces ({e}; write {{{{ or }}}} for a "
            f"literal brace) and the placeholders {_ALLOWED}"
        ) from e


def _check_from(value: str) -> str:
    """The one mailbox syntax check, shared with `mail.sender`: a bad From fails
    `build` and `ingest` too, not only the first `send`."""
    parse_mailbox(value)
    return value


class SiteSettings(Strict):
    name: str = Field(min_length=1)
    base_url: str
    timezone: str = "UTC"
    article_url: str = "{base_url}/{category}/{slug}"
    postal_address: str = ""
    # An article body longer than this is cut at ingest (on a block boundary):
    # the whole archive is re-read for similarity at every build.
    max_body_chars: int = Field(default=200_000, ge=1_000)
    # What the mails and public pages speak (BCP 47); a schedule may say otherwise.
    language: str = "en"

    _zone = field_validator("timezone")(check_zone)
    _language = field_validator("language")(check_language)
    _url = field_validator("base_url")(_check_http_url)
    _article_url = field_validator("article_url")(_check_article_url)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class EmailSettings(Strict):
    from_: str = Field(alias="from", min_length=3)
    transport: str = "file:outbox"
    # The List-Unsubscribe mailto: a mailbox your mail system turns into
    # unsubscribes (default unsubscribe@ the From domain). The https link,
    # handled by `newsletter serve`, is the one providers use for one-click.
    unsubscribe_mailbox: str = ""

    _from = field_validator("from_")(_check_from)

    @field_validator("transport")
    @classmethod
    def _transport(cls, value: str) -> str:
        transport_url.parse(value)  # the one reading, shared with --transport and the sender
        return value


# What the store can open (psycopg 3 for PostgreSQL); anything else is refused at load.
DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


def check_database_url(value: str) -> str:
    """A URL the store can open; ValueError names the supported forms and shows the URL
    without its password (a driver's import error would say nothing useful)."""
    scheme, sep, _ = value.partition("://")
    if not sep or scheme.lower() not in DATABASE_SCHEMES:
        raise ValueError(
            "a sqlite:///PATH or postgresql://USER@HOST/DATABASE URL (the databases newsletter "
            f"supports), got {transport_url.shown(value)!r}"
        )
    return value


class DatabaseSettings(Strict):
    url: str = "sqlite:///newsletter.db"

    _url = field_validator("url")(check_database_url)


class WebSettings(Strict):
    public_url: str = ""

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str) -> str:
        return _check_http_url(value) if value else value


def _duration(value: object) -> object:
    """Settings durations are written "3d", "5m"; a number is seconds."""
    return parse_duration(value) if isinstance(value, str) else value


class SendingSettings(Strict):
    """How `send` and `run` treat a relay that misbehaves (README: Sending)."""

    # A run whose first N deliveries all fail (or N in a row later) pauses the send.
    breaker: int = Field(default=10, ge=1, le=10_000)
    # Temporary and server-wide failures are retried for this long after the issue is queued.
    queue_lifetime: timedelta = timedelta(days=3)
    # How long a queued delivery waits for the next run; also how often `run` retries them.
    retry_interval: timedelta = timedelta(minutes=5)
    # A claim's lease, stored with it; unset: twice the SMTP timeout plus 5 s.
    lease: timedelta | None = None

    _durations = field_validator("queue_lifetime", "retry_interval", "lease", mode="before")(_duration)


DEFAULT_CONSENT = N_(  # shown translated to the site's language (web/signup.py)
    "I agree to receive this newsletter by email. Every issue has a link to change what "
    "I get or to unsubscribe."
)


class SignupSettings(Strict):
    """`newsletter serve`'s signup form, double opt-in and welcome (README: Subscribers join)."""

    consent_text: str = Field(default=DEFAULT_CONSENT, min_length=1, max_length=2000)
    double_opt_in: bool = True  # the form: a confirmation mail first (single: active at once)
    confirm_lifetime: timedelta = timedelta(days=7)  # how long a confirmation link works
    min_seconds: float = Field(default=2.0, ge=0, le=600)  # form render to submit, at least
    ip_limit: int = Field(default=10, ge=1, le=100_000)  # signups per IP per ip_window
    ip_window: timedelta = timedelta(hours=1)
    address_limit: int = Field(default=5, ge=1, le=1000)  # signups per address per day
    store_ip: bool = True  # keep the IP in the consent record
    welcome: bool = True  # a welcome mail after confirmation
    send_latest: bool = False  # and the latest sent issue of each chosen schedule

    _durations = field_validator("confirm_lifetime", "ip_window", mode="before")(_duration)


class SourceSettings(Strict):
    """One `[[sources]]` table: a feed URL, or a feed file or folder of pages (README: Sources)."""

    url: str = ""
    path: str = ""
    name: str = ""  # default: made from the URL's host and path, or the path's last part
    category: str = ""  # for entries that name none (before the feed's own category)
    categories: dict[str, str] = {}  # a source's tag -> the site's category
    every: timedelta = timedelta(hours=1)  # `run` polls it at most this often

    _every = field_validator("every", mode="before")(_duration)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("a feed URL starting with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> SourceSettings:
        if bool(self.url) == bool(self.path):
            raise ValueError("exactly one of url (a feed over http(s)) or path (a file or folder)")
        if not self.name:  # frozen: set once, here, before anyone reads it
            object.__setattr__(self, "name", source_name(self.url or self.path))
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not NAME.match(value):
            raise ValueError("a name of letters, digits, '-' or '_', at most 64 characters")
        return value

    @property
    def location(self) -> str:
        return self.url or self.path


def source_name(place: str) -> str:
    """`https://blog.example.org/feed.xml` -> `blog-example-org-feed-xml`; `posts/` -> `posts`."""
    place = place.split("://", 1)[1] if "://" in place else Path(place).name or Path(place).resolve().name
    words = re.findall(r"[A-Za-z0-9]+", place.lower())
    return "-".join(words)[:64].strip("-") or "source"


class RelatedSettings(Strict):
    """Related links by similarity (README: Related links). `neighbours` and `language`
    shape the stored index: after changing either, `newsletter reindex`."""

    # How many similar articles each article keeps (its top-k), computed at ingest.
    neighbours: int = Field(default=20, ge=3, le=100)
    # Below this score (0 to 1, the cosine of the articles' term weights) no similar link is shown:
    # 0.08 keeps unrelated sites apart (benchmarks/related_precision.py; README: Related links).
    min_similarity: float = Field(default=0.08, ge=0.02, le=1.0)
    # The site's language, Babel-style ("de", "pt_BR"): its stop words join the English ones.
    language: str = Field(default="", pattern=r"^([A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*)?$")


DKIM_ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DKIM_SELECTOR = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
DKIM_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class DkimSettings(Strict):
    """DKIM signing (README: DKIM), off until domain and selector are set. The private key
    is read from key_file (outside the project) or NEWSLETTER_DKIM_KEY, never from here."""

    domain: str = ""  # d=: the From domain, or its parent
    selector: str = ""  # s=: the key is published at SELECTOR._domainkey.DOMAIN
    algorithm: str = "rsa-sha256"
    key_file: str = ""  # the PEM private key; relative paths are from the project

    @field_validator("domain", mode="before")
    @classmethod
    def _domain(cls, value: object) -> object:
        value = value.strip().lower().rstrip(".") if isinstance(value, str) else value
        if isinstance(value, str) and value and not DKIM_DOMAIN.match(value):
            raise ValueError("a domain name such as 'example.org' (IDNs in xn-- form)")
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        if value and not DKIM_SELECTOR.match(value):
            raise ValueError("a selector of letters, digits and '-' (dot-separated labels), such as 'nl2026'")
        return value

    @field_validator("algorithm")
    @classmethod
    def _algorithm(cls, value: str) -> str:
        if value not in DKIM_ALGORITHMS:
            raise ValueError(" or ".join(repr(a) for a in DKIM_ALGORITHMS))
        return value

    @model_validator(mode="after")
    def _both(self) -> DkimSettings:
        if bool(self.domain) != bool(self.selector):
            raise ValueError("both domain and selector (signing on), or neither (off)")
        if self.key_file and not self.enabled:
            raise ValueError("domain and selector with key_file (a key_file alone signs nothing)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.domain and self.selector)


def _check_return_path(value: str) -> str:
    """`bounces+{token}@example.org`: one {token} in the local part, or a fixed address."""
    if value.count("{token}") > 1 or "{token}" in value.rpartition("@")[2]:
        raise ValueError("one {token} placeholder, in the part before the @")
    if "{" in value.replace("{token}", "") or "}" in value.replace("{token}", ""):
        raise ValueError("an address with only the {token} placeholder")
    if value:
        parse_mailbox(value.replace("{token}", "1-0"))
    return value


def _check_mailbox(value: str) -> str:
    if "://" in value and not re.match(r"^imaps://[^@/\s]+@[^/\s]+(/\S*)?$", value):
        raise ValueError("a Maildir path, or imaps://USER@HOST[:PORT]/FOLDER (IMAP over TLS)")
    return value


class BouncesSettings(Strict):
    """The return path and the bounce mailbox (README: Bounces and complaints)."""

    # The envelope sender (MAIL FROM) of every message; {token} names the delivery (VERP).
    # Default: bounces+{token}@ the From domain. The mailbox must receive every such address.
    return_path: str = ""
    # Where bounces, ARF complaints and mailto: unsubscribes arrive, for `newsletter bounces`:
    # a Maildir folder (relative to the project) or imaps://USER@HOST[:PORT]/FOLDER, the
    # password in NEWSLETTER_BOUNCES_PASSWORD.
    mailbox: str = ""
    every: timedelta = timedelta(minutes=10)  # how often `newsletter run` reads the mailbox
    # Temporary bounces (4.x.x) in a row, across issues, that suppress an address.
    soft_limit: int = Field(default=3, ge=1, le=100)

    _return_path = field_validator("return_path")(_check_return_path)
    _mailbox = field_validator("mailbox")(_check_mailbox)
    _every = field_validator("every", mode="before")(_duration)

    def sender(self, token: str, from_domain: str) -> str:
        """The envelope sender of the delivery that `token` names."""
        return (self.return_path or "bounces+{token}@" + from_domain).replace("{token}", token)


class PreviewSettings(Strict):
    """The editor's desk (README: Preview): who a test send may go to."""

    # The only addresses `send --test` and the preview's "Send a test" mail: the preview
    # is reachable by editors, and must not become a way to mail anyone.
    test_recipients: list[str] = []

    @field_validator("test_recipients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [normalize_email(address) for address in value]


class Settings(Strict):
    site: SiteSettings
    email: EmailSettings
    database: DatabaseSettings = DatabaseSettings()
    web: WebSettings = WebSettings()
    sending: SendingSettings = SendingSettings()
    related: RelatedSettings = RelatedSettings()
    dkim: DkimSettings = DkimSettings()
    bounces: BouncesSettings = BouncesSettings()
    signup: SignupSettings = SignupSettings()
    theme: ThemeSettings = ThemeSettings()
    sources: list[SourceSettings] = []
    preview: PreviewSettings = PreviewSettings()

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[SourceSettings]) -> list[SourceSettings]:
        names = [s.name for s in value]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"one [[sources]] table per name; {', '.join(twice)} named twice (set name)")
        return value

    @property
    def public_url(self) -> str:
        """Where browser and unsubscribe links point; the site itself by default."""
        return self.web.public_url or f"{self.site.base_url}/newsletter"


def load_settings(root: Path, environ: dict[str, str] | None = None) -> Settings:
    path = root / SETTINGS_FILE
    data = read_toml(path)
    overrides = _apply_environment(data, os.environ if environ is None else environ)
    return validate(Settings, data, path, overrides)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(
            str(path),
            "",
            "file not found; expected a newsletter project",
            "Run `newsletter init DIR` first, or pass --project DIR.",
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"not valid TOML ({e})") from e
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), "", "not UTF-8 text") from e


def _apply_environment(data: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """NEWSLETTER_DATABASE_URL overrides [database] url, and so on for every key.
    Returns the keys overridden ("database.url") and the variable that did it."""
    overrides = {}
    for name, (section, key) in setting_variables().items():
        if name in environ:
            data.setdefault(section, {})[key] = environ[name]
            overrides[f"{section}.{key}"] = name
    return overrides


def setting_variables() -> dict[str, tuple[str, str]]:
    """NEWSLETTER_<SECTION>_<KEY> -> (section, key), for every key of every table."""
    names = {}
    for section, model in Settings.model_fields.items():
        assert model.annotation is not None
        if not isinstance(model.annotation, type) or not issubclass(model.annotation, BaseModel):
            continue  # [[sources]] is a list of tables: no one-variable override
        for key, field in model.annotation.model_fields.items():
            names[f"NEWSLETTER_{section}_{field.alias or key}".upper()] = (section, field.alias or key)
    return names


# NEWSLETTER_ variables that are not settings: secrets, switches, the project folder and
# the test suite's. tests/test_config_input.py keeps this list and the code in step.
OTHER_VARIABLES = (
    "NEWSLETTER_SECRET_KEY",  # tokens.py
    "NEWSLETTER_SMTP_PASSWORD",  # transport_url.py
    "NEWSLETTER_BOUNCES_PASSWORD",  # bounces.py (IMAP)
    "NEWSLETTER_DKIM_KEY",  # signing.py
    "NEWSLETTER_PREVIEW_PASSWORD",  # preview beyond loopback (web/access.py)
    "NEWSLETTER_ALLOW_PLACEHOLDERS",  # send --allow-placeholders, run
    "NEWSLETTER_PROJECT",  # --project
    "NEWSLETTER_UPDATE_GOLDEN",  # make golden
)


def environment_warnings(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """A NEWSLETTER_ variable that is neither a setting nor one of OTHER_VARIABLES is
    almost always a misspelt one, which would otherwise be ignored without a word."""
    known = [*setting_variables(), *OTHER_VARIABLES]
    prefix = "NEWSLETTER_"  # compared without it: every name shares it, which makes anything look close
    warnings = []
    for name in sorted(n for n in environ if n.startswith(prefix) and n not in known):
        close = difflib.get_close_matches(name[len(prefix) :], [k[len(prefix) :] for k in known], n=1)
        guess = f"; did you mean {prefix}{close[0]}?" if close else " (README: Project files lists them)"
        warnings.append(f"{name} is not a setting{guess}")
    return warnings


# Keys whose forms are worth a reminder beyond the file's own comments.
KEY_HINTS = {"email.transport": transport_url.HINT}


def validate(model: type[M], data: dict[str, Any], path: Path, overrides: dict[str, str] | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        # sources.0.url reads as sources[1].url: tables are counted from 1, as people do.
        key = ".".join(str(p) for p in first["loc"])
        key = re.sub(r"\.(\d+)(?=\.|$)", lambda m: f"[{int(m[1]) + 1}]", key)
        if variable := (overrides or {}).get(key):  # the value came from the environment: say so
            hint = f"Fix or unset {variable} (it overrides {key} in {path.name})."
            raise ConfigError(variable, "", _expected(first), hint) from e
        raise ConfigError(str(path), key, _expected(first), KEY_HINTS.get(key, "")) from e


def _expected(error: Any) -> str:
    if error["type"] == "missing":
        return "missing; this key is required"
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling)"
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = error.get("input")
    if ", got " in message or isinstance(shown, dict | list):  # said already, or a whole table
        return f"expected {message}"
    return f"expected {message}, got {shown!r}"
