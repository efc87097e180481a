"""`init` and `demo`: new projects from the bundled files."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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
timezone = "Europe/London"        # date-only articles are midnight here
article_url = "{{base_url}}/{{category}}/{{slug}}"   # also {{year}} {{month}} {{day}}
# max_body_chars = 200000         # longer article bodies are cut at ingest (with a warning)
postal_address = "1 Example Street, London"

[email]
from = {from_}
transport = "file:outbox"         # what `send` and `run` use unless --transport says otherwise

[database]
url = "sqlite:///newsletter.db"   # relative to the project; or postgresql://...

[web]
public_url = {public_url}   # where browser and unsubscribe links point
"""

NEUTRAL_SCHEDULE = """\
# One issue a week with every category's new articles. Name categories to narrow it
# (categories = ["News", "Guides"]); add schedules/OTHER.toml for more newsletters.
title = {title}
cron = "0 8 * * mon"              # crontab (0 or 7 = Sunday), in the time zone below
timezone = "Europe/London"
categories = ["*"]                # every category in the archive
max_per_category = 5
related_per_article = 3
subject = "{{{{ title }}}}: {{{{ lead.title }}}}"
skip_if_empty = true
"""

# The demo's issues go out on Monday 23 November 2026 at 08:00 in London:
# the week after the newest sample article, so every issue is full.
DEMO_AT = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/London"))


def settings_text(name: str, base_url: str) -> str:
    """newsletter.toml for a new project. Values are TOML strings (JSON's escapes are
    TOML's), and the From name is quoted when it needs to be ("Health, Mind & Body")."""
    from email.headerregistry import Address

    from_ = str(Address(display_name=" ".join(name.split()), addr_spec="digest@example.org"))
    values = {"name": name, "base_url": base_url, "from_": from_, "public_url": f"{base_url}/newsletter"}
    return SETTINGS_TEMPLATE.format(**{k: json.dumps(v, ensure_ascii=False) for k, v in values.items()})


def schedule_text(name: str) -> str:
    """The one schedule of a new project: weekly, every category, the project's own name."""
    return NEUTRAL_SCHEDULE.format(title=json.dumps(name, ensure_ascii=False))


def init(
    root: Path, name: str = "My Newsletter", base_url: str = "https://example.org", demo: bool = False
) -> list[Path]:
    """Create settings, a schedule and editable templates; never overwrite a file. A new
    project gets one neutral weekly schedule; the demo gets the sample site's two."""
    created = []
    settings = root / SETTINGS_FILE
    if not settings.exists():
        atomic_write(settings, settings_text(name, base_url).encode())
        created.append(settings)
    if demo:
        created += _copy_missing(bundled("examples") / "schedules", root / SCHEDULES_DIR)
    elif not (root / SCHEDULES_DIR).is_dir():
        weekly = root / SCHEDULES_DIR / "weekly.toml"
        atomic_write(weekly, schedule_text(name).encode())
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
