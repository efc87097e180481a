"""Email digests of a site's articles: Jinja2 + MJML templates, inlined CSS, scheduled sends.

Importing the package loads nothing else: each module pulls in its heavy
libraries (premailer, feedparser, the web stack, ...) only in
the functions that use them, so every command starts fast.
"""

__version__ = "0.1.0"  # keep equal to [project] version in pyproject.toml (tests/test_startup.py checks)
