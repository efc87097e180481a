"""Issue 21: `newsletter check`, the template validation, and the build's warnings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.core.errors import TemplateError
from newsletter.digest.check import Letter, check_letter, read_letter
from newsletter.digest.check.clients import data_path
from newsletter.digest.render import Renderer, default_templates

GOOD = (
    '<!doctype html><html lang="en"><head><title>t</title></head><body>'
    '<div style="display:none">A preheader that says something else entirely{pad}</div>'
    '<table role="presentation"><tr><td><p>{body}</p>'
    '<a href="https://news.test/unsubscribe">Unsubscribe</a></td></tr></table></body></html>'
)


def html(body: str = "Some words a reader reads.") -> str:
    return GOOD.format(pad="\u034f\u200c\u00a0" * 40, body=body)


def findings(page: str, level: str = "error") -> list[str]:
    report = check_letter(Letter(page, "text", subject="Subject"), spam=False)
    return [f.message for f in report.of(level)]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "demo"
    result = CliRunner().invoke(main, ["demo", str(root)])
    assert result.exit_code == 0, result.output
    return root / "issues"


@pytest.mark.skipif(not data_path().is_file(), reason="make caniemail")
@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="make spamassassin")
def test_demo_issues_pass_strict_and_score_nothing(demo: Path) -> None:
    for eml in sorted(demo.glob("*.eml")):
        result = CliRunner().invoke(main, ["check", str(eml), "--strict"])
        assert result.exit_code == 0, result.output
        assert "SpamAssassin score 0.0" in result.output or "SpamAssassin score -" in result.output


def test_clean_html_passes() -> None:
    assert findings(html()) == []


def test_clipped_size() -> None:
    assert any("Gmail clips" in m for m in findings(html("x" * 110_000)))


def test_missing_alt_and_http_image() -> None:
    found = findings(html('<img src="http://news.test/a.png" width="10">'))
    assert any("no alt text" in m for m in found) and any("https" in m for m in found)


def test_javascript_localhost_and_empty_links() -> None:
    page = html('<a href="javascript:alert(1)">a</a><a href="http://127.0.0.1/x">b</a><a href="#">c</a>')
    assert len([m for m in findings(page) if m.startswith("link")]) == 3


def test_anchor_to_an_id_is_fine() -> None:
    assert findings(html('<a href="#s1">jump</a><h2 id="s1">S</h2>')) == []


@pytest.mark.skipif(not data_path().is_file(), reason="make caniemail")
def test_css_outlook_ignores() -> None:
    assert any(
        "position" in m and "outlook windows" in m
        for m in findings(html('<span style="position:absolute">x</span>'))
    )


def test_image_only_mail() -> None:
    found = findings(html('<img src="https://news.test/a.png" alt="" width="600" height="900">'), "warning")
    assert any("mostly image" in m for m in found)


def test_low_contrast() -> None:
    assert any("contrast" in m for m in findings(html('<span style="color:#dddddd">pale</span>')))


def test_no_text_part_and_headers() -> None:
    raw = b"From: a@news.test\r\nSubject: Hi\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n"
    report = check_letter(read_letter("x.eml", raw), spam=False)
    messages = [f.message for f in report.of("error")]
    assert any("text/plain" in m for m in messages)
    assert any("Message-ID" in m for m in messages) and any("Date" in m for m in messages)


def test_sent_message_needs_bulk_sender_rules() -> None:
    raw = b"From: a@news.test\r\nSubject: Hi\r\nDKIM-Signature: v=1; d=other.test; s=x\r\n\r\nhello\r\n"
    report = check_letter(read_letter("x.eml", raw), spam=False)
    messages = " ".join(f.message for f in report.of("error"))
    assert "not aligned" in messages and "List-Unsubscribe" in messages


def test_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(html('<a href="javascript:x">x</a>'))
    assert CliRunner().invoke(main, ["check", str(bad)]).exit_code == 1
    pale = tmp_path / "warn.html"
    pale.write_text(html("x" * 95_000))
    assert CliRunner().invoke(main, ["check", str(pale)]).exit_code == 0
    assert CliRunner().invoke(main, ["check", str(pale), "--strict"]).exit_code == 1


def _template(tmp_path: Path, old: str, new: str) -> Renderer:
    folder = tmp_path / "templates"
    shutil.copytree(default_templates(), folder)
    digest = folder / "digest.mjml.j2"
    digest.write_text(digest.read_text().replace(old, new, 1))
    return Renderer([folder])


def test_misspelt_tag_is_an_error_with_a_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"digest.mjml.j2:\d+: unknown MJML tag <mj-colum>"):
        _template(tmp_path, "<mj-column>", "<mj-colum>").validate("digest.mjml.j2")


def test_unknown_attribute_is_a_warning_with_a_line(tmp_path: Path) -> None:
    warnings = _template(tmp_path, "<mj-column>", '<mj-column widht="300px">').validate("digest.mjml.j2")
    assert any("line" in w and "'widht'" in w and "'width'" in w for w in warnings)


def test_unclosed_tag_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"digest.mjml.j2:\d+: .*mj-column.* opened at line \d+"):
        _template(tmp_path, "</mj-column>", "").validate("digest.mjml.j2")


def test_default_templates_validate() -> None:
    renderer = Renderer([default_templates()])
    for name in ("digest", "welcome", "confirm"):
        assert renderer.validate(f"{name}.mjml.j2") == []


def test_build_prints_the_checks_warnings(tmp_path: Path, demo: Path) -> None:
    root = demo.parent
    footer = root / "templates"
    shutil.copytree(default_templates(), footer, dirs_exist_ok=True)
    digest = footer / "digest.mjml.j2"
    faint = '<mj-text><p style="color:#c8c8c8">Words too faint to read</p></mj-text>'
    digest.write_text(digest.read_text().replace("</mj-column>", faint + "</mj-column>", 1))
    result = CliRunner().invoke(
        main, ["--project", str(root), "build", "weekly", "--at", "2026-11-23T08:00:00+00:00"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: check: error: [contrast]" in result.output
