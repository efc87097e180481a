"""`init` and `demo`: new projects from the bundled files."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.config import SCHEDULES_DIR, SETTINGS_FILE
from newsletter.output import atomic_write
from newsletter.resources import bundled

SETTINGS_TEMPLATE = """\
# newsletter project settings. Environment variables override any key:
# NEWSLETTER_DATABASE_URL, NEWSLETTER_EMAIL_TRANSPORT, NEWSLETTER_WEB_PUBLIC_URL ...
# Secrets (NEWSLETTER_SMTP_PASSWORD, NEWSLETTER_SECRET_KEY) only ever come from the environment.

[site]
name = "{name}"
base_url = "{base_url}"
timezone = "Europe/London"        # date-only articles are midnight here
article_url = "{{base_url}}/{{category}}/{{slug}}"   # also {{year}} {{month}} {{day}}
# max_body_chars = 200000         # longer article bodies are cut at ingest (with a warning)
postal_address = "1 Example Street, London"

[email]
from = "{name} <digest@example.org>"
transport = "file:outbox"         # what `send` and `run` use unless --transport says otherwise

[database]
url = "sqlite:///newsletter.db"   # relative to the project; or postgresql://...

[web]
public_url = "{base_url}/newsletter"   # where browser and unsubscribe links point
"""

# The demo's issues go out on Monday 23 November 2026 at 08:00 in London:
# the week after the newest sample article, so every issue is full.
DEMO_AT = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Europe/London"))


def init(root: Path, name: str = "My Newsletter", base_url: str = "https://example.org") -> list[Path]:
    """Create settings, schedules and editable templates; never overwrite a file."""
    created = []
    settings = root / SETTINGS_FILE
    if not settings.exists():
        atomic_write(settings, SETTINGS_TEMPLATE.format(name=name, base_url=base_url).encode())
        created.append(settings)
    created += _copy_missing(bundled("schedules"), root / SCHEDULES_DIR)
    created += _copy_missing(bundled("templates"), root / "templates")
    return created


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
