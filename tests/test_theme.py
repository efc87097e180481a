"""Issue 19: `[theme]` (brand without editing MJML) and the one WCAG contrast computation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.core.config import load_settings
from newsletter.core.contrast import AA_TEXT, luminance, ratio
from newsletter.core.errors import ConfigError
from newsletter.core.theme import ThemeSettings, contrast_warnings, text_pairs
from newsletter.digest.render import Renderer, default_templates
from tests.test_render import LINKS, SETTINGS, digest

CUSTOM = {
    "accent": "#7a1f5c",
    "link": "#7a1f5c",
    "background": "#fffdf8",
    "page": "#f4efe6",
    "text": "#2b2622",
    "heading": "#1a1410",
    "muted": "#5c534b",
    "dark_accent": "#e7a6cf",
    "dark_link": "#e7a6cf",
    "dark_background": "#211c19",
    "dark_page": "#151210",
    "dark_text": "#e8e1da",
    "dark_muted": "#b5aba1",
    "font": "Georgia,'Times New Roman',serif",
    "logo_url": "https://example.org/logo.png",
}


def test_wcag_reference_values():
    assert ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic near-miss
    assert luminance("#ffffff") == pytest.approx(1.0)
    assert ratio("rgb(47, 111, 104)", "#2f6f68") == pytest.approx(1.0)  # as a browser reports it


@pytest.mark.parametrize(
    "theme", [ThemeSettings(), ThemeSettings.model_validate(CUSTOM)], ids=["default", "custom"]
)
def test_every_text_pair_passes_aa_light_and_dark(theme: ThemeSettings):
    pairs = text_pairs(theme)
    assert any(fg.startswith("dark_") for fg, *_ in pairs) and any(fg == "muted" for fg, *_ in pairs)
    for fg, fg_colour, bg, bg_colour in pairs:
        assert ratio(fg_colour, bg_colour) >= AA_TEXT, f"{fg} on {bg}: {ratio(fg_colour, bg_colour):.2f}"
    assert contrast_warnings(theme) == []


def test_the_old_footer_grey_would_fail_on_the_page():
    # Before issue 19 the footer was #6b7280 on #f3f4f6.
    (warning,) = contrast_warnings(ThemeSettings(muted="#6b7280"))
    assert warning.startswith("[theme] muted #6b7280 on page #f3f4f6 has contrast 4.39:1")


def write_theme(root: Path, table: str) -> None:
    (root / "newsletter.toml").write_text(
        '[site]\nname = "S"\nbase_url = "https://example.org"\n[email]\nfrom = "S <s@example.org>"\n' + table
    )


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ('[theme]\naccent = "teal"', "theme.accent", "#rrggbb"),
        ('[theme]\ndark_text = "#fff"', "theme.dark_text", "#rrggbb"),
        ('[theme]\nlogo_url = "http://example.org/l.png"', "theme.logo_url", "https://"),
        ('[theme]\nfont = "x;}body{display:none"', "theme.font", "font stack"),
        ('[theme]\nbackgrund = "#ffffff"', "theme.backgrund", "unknown key"),
        ('[site]\nlanguage = "xx"', "site.language", "en, de, fr, es, pt, sv, ru, ja, ko, zh, ar"),
    ],
)
def test_bad_theme_or_language_is_one_line_naming_the_key(
    tmp_path: Path, table: str, key: str, expected: str
):
    if table.startswith("[site]"):
        site = '[site]\nname = "S"\nbase_url = "https://example.org"\nlanguage = "xx"\n'
        (tmp_path / "newsletter.toml").write_text(site + '[email]\nfrom = "S <s@e.org>"\n')
    else:
        write_theme(tmp_path, table)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})
    message = str(caught.value)
    assert key in message and expected in message and "\n" not in message


def test_a_weak_theme_is_a_build_warning(demo_project, project_dir: Path):
    toml = project_dir / "newsletter.toml"
    toml.write_text(toml.read_text() + '\n[theme]\nmuted = "#aaaaaa"\n')
    from newsletter.project import Project
    from tests.conftest import NOW

    project = Project(project_dir, environ={})
    try:
        build = project.build("weekly", NOW, NOW, record=False)
    finally:
        project.close()
    assert any(w.startswith("[theme] muted #aaaaaa on background #ffffff") for w in build.warnings)


def test_the_theme_reaches_the_mail():
    settings = SETTINGS.model_copy(update={"theme": ThemeSettings.model_validate(CUSTOM)})
    html = Renderer([default_templates()]).render(digest(), settings, LINKS).html
    assert "#7a1f5c" in html and "#2f6f68" not in html  # no teal left over
    assert "Georgia,'Times New Roman',serif" in html or "Georgia,&#39;Times New Roman&#39;,serif" in html
    assert re.search(r'<img[^>]+alt="Mind &amp; Body"[^>]+src="https://example.org/logo.png"', html) or (
        'src="https://example.org/logo.png"' in html and 'alt="Mind &amp; Body"' in html
    )
    assert "[data-ogsc]" in html and "[data-ogsb]" in html  # Outlook.com's dark mode
