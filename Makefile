# Two commands are the contract: `make demo` and `make test`.
# Everything lives in a local virtual environment, .venv, with pinned versions.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-postgresql test-fast lint bench bench-smoke bench-send bench-scale golden docs clean chromium postfix postgresql dovecot caniemail spamassassin mjml-spec

CANIEMAIL_VERSION := 2.0.2
CANIEMAIL := .cache/caniemail/caniemail.json

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)   ## make a demo project in ./demo from the sample articles and build its issues
	$(BIN)/newsletter demo demo

test: $(STAMP) lint chromium postfix postgresql dovecot caniemail spamassassin   ## lint, then the whole test suite on SQLite and on PostgreSQL
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --backend=postgresql

test-postgresql: $(STAMP) postgresql   ## the whole suite again, every project on a private PostgreSQL (tests/conftest.py)
	$(BIN)/python -m pytest -q --backend=postgresql

test-fast: $(STAMP)   ## the suite without the tests marked slow (browser, killed processes, full disk)
	$(BIN)/python -m pytest -q -m "not slow"

postfix:   ## the end-to-end test runs a private instance of Debian's postfix (not the system's mail)
	@PATH="$$PATH:/usr/sbin" command -v postfix >/dev/null 2>&1 || { \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix; }

dovecot:   ## the IMAPS bounce tests run a private instance of Debian's dovecot (the machine's own is never started)
	@PATH="$$PATH:/usr/sbin" command -v dovecot >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd; }

postgresql:   ## the portability tests run a private server from Debian's postgresql (its own cluster is never made)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  mkdir -p /etc/postgresql-common && \
	  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf && \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }

caniemail: $(CANIEMAIL)   ## client support data for `newsletter check` (caniemail, MIT) into a git-ignored cache

$(CANIEMAIL):
	mkdir -p .cache/caniemail
	cd .cache/caniemail && npm pack --silent caniemail@$(CANIEMAIL_VERSION) >/dev/null && \
	  tar xzf caniemail-$(CANIEMAIL_VERSION).tgz package/data/caniemail.json && \
	  mv package/data/caniemail.json caniemail.json && rm -rf package caniemail-$(CANIEMAIL_VERSION).tgz

spamassassin:   ## `newsletter check` scores the email with Debian's spamassassin, offline
	@command -v spamassassin >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends spamassassin; }

mjml-spec:   ## regenerate newsletter/digest/check/mjml_spec.json from MJML's own components (needs npm)
	rm -rf .cache/mjml && mkdir -p .cache/mjml && cd .cache/mjml && npm install --silent --no-audit --no-fund mjml@4.15.3
	NODE_PATH=.cache/mjml/node_modules node scripts/mjml_spec.js > newsletter/digest/check/mjml_spec.json

chromium:   ## the browser tests drive Debian's chromium; never a downloaded browser
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; }

lint: $(STAMP)   ## ruff (check and format), mypy, then the layer contract ([tool.importlinter] in pyproject.toml)
	$(BIN)/ruff check newsletter tests benchmarks scripts
	$(BIN)/ruff format --check newsletter tests benchmarks scripts
	$(BIN)/mypy newsletter tests
	$(BIN)/lint-imports --no-cache --no-logo

bench: $(STAMP) postfix   ## every figure beside its peer (one table; benchmarks/results/latest.json; the send rows against aiosmtpd and a private Postfix), then signup and archive load on serve
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/signup_load.py

bench-smoke: $(STAMP)   ## the same table in seconds (tiny archives, once, no target judged; the Postfix rows only where postfix is installed): CI runs it so the benchmarks keep working
	$(BIN)/python benchmarks/bench.py --smoke

bench-send: $(STAMP)   ## send throughput in detail: a message's CPU, 1 and 4 connections, DKIM algorithms, beside raw smtplib
	$(BIN)/python benchmarks/send.py

bench-scale: $(STAMP)   ## related links at 10k/100k/1M articles: build (cold, warm, RSS), ingest; then the 1M rows of the table
	$(BIN)/python benchmarks/scale.py $(SIZES)
	$(BIN)/python benchmarks/bench.py --scale

golden: $(STAMP)   ## regenerate the golden files after an intended change to the output
	NEWSLETTER_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py

docs: $(STAMP)   ## regenerate docs/cli.md from the click commands (tests/test_docs.py checks it)
	$(BIN)/python scripts/cli_reference.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .hypothesis .mypy_cache
