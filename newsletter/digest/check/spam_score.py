"""SpamAssassin's score, offline: local tests only (-L), Bayes off, nothing learnt (-t)."""

from __future__ import annotations

import re
import shutil
import subprocess

from newsletter.digest.check import Finding, Letter

RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")
SPAM = 5.0  # SpamAssassin's own required_score


def check_spam(letter: Letter) -> list[Finding]:
    if letter.raw is None:
        return [Finding("spam", "skipped", "SpamAssassin scores a whole message: check the .eml")]
    program = shutil.which("spamassassin")
    if program is None:
        return [
            Finding("spam", "skipped", "spamassassin is not installed (Debian: apt-get install spamassassin)")
        ]
    done = subprocess.run(
        [program, "-t", "-L", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        input=letter.raw,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return _findings(done.stdout.decode("utf-8", "replace"))


def _findings(report: str) -> list[Finding]:
    rules = [(float(m.group(1)), m.group(2), m.group(3)) for m in map(RULE.match, _details(report)) if m]
    total = sum(score for score, _, _ in rules)
    fired = ", ".join(f"{name} {score:+.1f}" for score, name, _ in rules)
    found = [
        Finding("spam", "error" if total >= SPAM else "note", f"SpamAssassin score {total:.1f} ({fired})")
    ]
    for score, name, what in rules:
        if score > 0:
            found.append(Finding("spam", "warning", f"{name} scores {score:+.1f}: {what.strip()}"))
    return found


def _details(report: str) -> list[str]:
    _, _, table = report.partition("Content analysis details:")
    lines = table.split("\n")[3:] if table else []
    end = lines.index("") if "" in lines else len(lines)
    return lines[:end]
