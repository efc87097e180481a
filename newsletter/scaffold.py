"""`init` and `demo`: new projects from the bundled files."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.core.config import SCHEDULES_DIR, SETTINGS_FILE
from newsletter.core.output import atomic_write
from newsletter.core.resources import bundled

SETTINGS_TEMPLATE = """\
# newsletter project settings. Environment variables override any key:
# NEWSLETTER_DATABASE_URL, NEWSLETTER_EMAIL_TRANSPORT, NEWSLETTER_WEB_PUBLIC_URL ...
# Secrets (NEWSLETTER_SMTP_PASSWORD, NEWSLETTER_SECRET_KEY) only ever come from the environment.

[site]
name = {name}
base_url = {base_url}
language = {language}                 # BCP 47: the mails' and pages' words, dates, direction
timezone = {timezone}        # date-only articles are midnight here
article_url = "{{base_url}}/{{category}}/{{slug}}"   # also {{year}} {{month}} {{day}}
# max_body_chars = 200000         # longer article bodies are cut at ingest (with a warning)
postal_address = "1 Example Street, London"

[email]
from = {from_}
transport = {transport}         # what `send` and `run` use unless --transport says otherwise

[database]
url = "sqlite:///newsletter.db"   # relative to the project; or postgresql://...

[web]
public_url = {public_url}   # where browser and unsubscribe links point
"""

# A new project's one place its articles come from, when init was given one (README: Sources).
SOURCE_TEMPLATE = """
[[sources]]
{key} = {place}
"""
NO_SOURCE = """
# Where the articles come from (README: Sources); `newsletter fetch` reads them:
# [[sources]]
# url = "https://example.org/feed.xml"   # or: path = "content/posts"
"""

NEUTRAL_SCHEDULE = """\
# One issue a week with every category's new articles. Name categories to narrow it
# (categories = ["News", "Guides"]); add schedules/OTHER.toml for more newsletters.
title = {title}
cron = "0 8 * * mon"              # crontab (0 or 7 = Sunday), in the time zone below
timezone = {timezone}
categories = ["*"]                # every category in the archive
max_per_category = 5
related_per_article = 3
subject = "{{{{ title }}}}: {{{{ lead.title }}}}"
skip_if_empty = true
"""

# The demo's issues go out on Monday 23 November 2026 at 08:00 in London:
# the week after the newest sample article, so every issue is full.
DEMO_AT = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/London"))


@dataclass(frozen=True)
class Start:
    """What `init` asks for (README: Your first newsletter). Each value is checked by
    `checked` (one reading for the flags and the prompts) before anything is written."""

    name: str = "My Newsletter"
    base_url: str = "https://example.org"
    language: str = "en"
    timezone: str = "Europe/London"
    source: str = ""  # a feed URL or a file or folder of articles; empty: none yet
    sender: str = ""  # the From mailbox; empty: the name <digest@example.org>
    transport: str = "file:outbox"

    @property
    def from_(self) -> str:
        from email.headerregistry import Address

        name = " ".join(self.name.split())
        return self.sender or str(Address(display_name=name, addr_spec="digest@example.org"))


def settings_text(name: str, base_url: str, start: Start | None = None) -> str:
    """newsletter.toml for a new project. Values are TOML strings (JSON's escapes are
    TOML's), and the From name is quoted when it needs to be ("Health, Mind & Body")."""
    start = replace(start or Start(), name=name, base_url=base_url)
    values = {
        "name": name,
        "base_url": base_url,
        "language": start.language,
        "timezone": start.timezone,
        "from_": start.from_,
        "transport": start.transport,
        "public_url": f"{base_url}/newsletter",
    }
    text = SETTINGS_TEMPLATE.format(**{k: _toml(v) for k, v in values.items()})
    return text + source_text(start.source)


def source_text(source: str) -> str:
    """The `[[sources]]` table for a feed URL or a path (from the project), or a commented one."""
    if not source:
        return NO_SOURCE
    key = "url" if URL.match(source) else "path"
    return SOURCE_TEMPLATE.format(key=key, place=_toml(source))


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def schedule_text(name: str, timezone: str = Start.timezone) -> str:
    """The one schedule of a new project: weekly, every category, the project's own name."""
    return NEUTRAL_SCHEDULE.format(title=_toml(name), timezone=_toml(timezone))


def init(
    root: Path,
    name: str = "My Newsletter",
    base_url: str = "https://example.org",
    demo: bool = False,
    start: Start | None = None,
) -> list[Path]:
    """Create settings, a schedule and editable templates; never overwrite a file. A new
    project gets one neutral weekly schedule; the demo gets the sample site's two."""
    start = replace(start or Start(), name=name, base_url=base_url)
    created = []
    settings = root / SETTINGS_FILE
    if not settings.exists():
        atomic_write(settings, settings_text(name, base_url, start).encode())
        created.append(settings)
    if demo:
        created += _copy_missing(bundled("examples") / "schedules", root / SCHEDULES_DIR)
    elif not (root / SCHEDULES_DIR).is_dir():
        weekly = root / SCHEDULES_DIR / "weekly.toml"
        atomic_write(weekly, schedule_text(name, start.timezone).encode())
        created.append(weekly)
    created += _copy_missing(bundled("templates"), root / "templates")
    return created


def init_demo(root: Path) -> list[Path]:
    """The demo project: the sample site's settings and schedules (articles come by ingest)."""
    return init(root, name="Mind & Body", base_url="https://mindandbody.example.org", demo=True)


def _copy_missing(source: Path, target: Path) -> list[Path]:
    created = []
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_file() and not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            created.append(destination)
    return created


def demo_articles() -> Path:
    return bundled("examples") / "articles"


def demo_subscribers() -> Path:
    return bundled("examples") / "subscribers.csv"


# -- init's questions, checked: each check returns the value to write or raises ValueError
# saying what was expected (the CLI names the flag or the prompt) --------------------------

URL = re.compile(r"^https?://[^\s/]+")


def check_name(value: str) -> str:
    if not value.strip() or len(value) > 200 or not value.isprintable():
        raise ValueError(f"a name of one line, 1 to 200 characters, got {value!r}")
    return value.strip()


def check_base_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value.strip()):
        raise ValueError(f"the site's address starting with https:// (https://example.org), got {value!r}")
    return value.strip().rstrip("/")


def check_language(value: str) -> str:
    from newsletter.core.languages import check_language

    try:
        return check_language(value.strip())
    except ValueError as e:
        raise ValueError(f"{e}, got {value!r}") from None


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"an IANA time zone such as 'Europe/London', got {value!r}") from None
    return value.strip()


def check_source(value: str, root: Path) -> str:
    """A feed URL as it is; a file or folder (from the working directory) as the project
    reads it: relative to the project when inside it, else absolute."""
    value = value.strip()
    if not value or URL.match(value):
        return value
    place = Path(value).expanduser().resolve()
    if not place.exists():
        raise ValueError(f"a feed URL (http:// or https://) or an existing file or folder, got {value!r}")
    try:
        return str(place.relative_to(root.resolve()))
    except ValueError:
        return str(place)


def check_sender(value: str) -> str:
    from newsletter.core.addresses import parse_mailbox

    if value.strip():
        try:
            parse_mailbox(value.strip())
        except ValueError as e:
            raise ValueError(f"{e}, got {value!r}") from None
    return value.strip()


def check_transport(value: str) -> str:
    from newsletter.core import transport_url

    transport_url.parse(value)  # ValueError: the forms it takes
    return value.strip()
