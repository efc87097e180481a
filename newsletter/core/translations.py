"""The words the mails and public pages print, in the reader's language: gettext
catalogues in newsletter/locale/<lang>/LC_MESSAGES/newsletter.po, compiled in memory
with Babel when first used (no binary .mo in git, no build step). English is the
source text, so `en` needs no catalogue of its own.

Words set in Python (the public pages' titles and messages) are marked with `N_` where
they are written, so the catalogue test finds them, and translated where they are shown.

Dates and numbers go through Babel too (`long_date`, `short_date`, `number`)."""

from __future__ import annotations

import gettext
import io
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from newsletter.core.languages import babel_locale, primary

LOCALE = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "newsletter"


def catalogue(language: str) -> Path:
    return LOCALE / primary(language) / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (its first subtag); English is the source."""
    path = catalogue(language)
    if primary(language) == "en" or not path.is_file():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        parsed = read_po(f, locale=primary(language), domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def N_(message: str) -> str:  # noqa: N802 (gettext's own name for it)
    """A message for the catalogues, left as it is: the page that shows it translates it."""
    return message


def long_date(value: datetime, language: str) -> str:
    """`Monday 30 November 2026`, `Montag, 30. November 2026`, `2026年11月30日月曜日`."""
    from babel.dates import format_date

    if primary(language) == "en":  # the house style, unchanged: day before month, no comma
        return f"{value:%A} {value.day} {value:%B %Y}"
    return str(format_date(value.date(), format="full", locale=babel_locale(language)))


def day_date(value: datetime, language: str) -> str:
    """`30 November 2026`, `30. November 2026`, `2026年11月30日`: the archive's dates."""
    from babel.dates import format_date

    if primary(language) == "en":
        return f"{value.day} {value:%B %Y}"
    return str(format_date(value.date(), format="long", locale=babel_locale(language)))


def short_date(value: datetime, language: str) -> str:
    from babel.dates import format_date

    if primary(language) == "en":
        return f"{value.day} {value:%b %Y}"
    return str(format_date(value.date(), format="medium", locale=babel_locale(language)))


def number(value: int, language: str) -> str:
    from babel.numbers import format_decimal

    return str(format_decimal(value, locale=babel_locale(language)))


def weekday_time(day: int, hour: int, minute: int, language: str) -> tuple[str, str]:
    """The name of weekday `day` (0 = Monday) and `08:00`, in `language`."""
    from datetime import time

    from babel.dates import format_time, get_day_names

    where = babel_locale(language)
    names: Any = get_day_names("wide", locale=where)
    shape = "HH:mm" if primary(language) == "en" else "short"  # "08:00", as the schedule files write it
    return str(names[day]), str(format_time(time(hour, minute), format=shape, locale=where))


def moment(value: datetime, language: str, with_year: bool = True) -> str:
    """A send time as the desk shows it, in `value`'s own zone (the caller converts):
    `Mon 23 Nov 2026, 08:00 GMT`, `Mo., 23. Nov. 2026, 08:00 GMT`, `2026年11月23日(月) 8:00 GMT`."""
    from babel.dates import format_skeleton, get_datetime_format

    zone = value.tzname() or ""
    if primary(language) == "en":  # the house style, as `local_time` and the pages had it
        year = f" {value:%Y}" if with_year else ""
        return f"{value:%a} {value.day} {value:%b}{year}, {value:%H:%M} {zone}".rstrip()
    where = babel_locale(language)
    day = format_skeleton("yMMMEd" if with_year else "MMMEd", value, locale=where)
    hour = format_skeleton("Hm", value, locale=where)
    both = str(get_datetime_format("medium", locale=where)).replace("{1}", day).replace("{0}", hour)
    return f"{both} {zone}".rstrip()


def weekday_day(value: datetime, language: str) -> str:
    """`Mon 23 Nov 2026`, `Mo., 23. Nov. 2026`: a day in `value`'s own zone."""
    from babel.dates import format_skeleton

    if primary(language) == "en":
        return f"{value:%a} {value.day} {value:%b %Y}"
    return str(format_skeleton("yMMMEd", value, locale=babel_locale(language)))


def hour_minute(value: datetime, language: str) -> str:
    """`08:00`, `8:00`: a time of day in `value`'s own zone."""
    from babel.dates import format_skeleton

    if primary(language) == "en":
        return f"{value:%H:%M}"
    return str(format_skeleton("Hm", value, locale=babel_locale(language)))
