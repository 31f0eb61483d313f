# The one entry point. `make demo` and `make test` set up everything they need.
# The functions' Python (.python-version; pyenv reads it too): the suite, the demo and the
# layer run on the version the Lambdas run.
LAMBDA_PYTHON := $(shell cat .python-version)
PYTHON ?= python$(LAMBDA_PYTHON)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat .python-version requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2

export CDK_DISABLE_CLI_TELEMETRY := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: venv tools layer synth demo bench test test-unit test-integration test-e2e test-infrastructure chaos lint format clean

$(STAMP): .python-version requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(LAMBDA_PYTHON)" else "$(PYTHON) is Python " + v + "; the Lambdas run $(LAMBDA_PYTHON) (.python-version): install it (pyenv install $(LAMBDA_PYTHON)) or name one: make PYTHON=/path/to/python$(LAMBDA_PYTHON)")'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Debian's minisign (interoperability tests), Chromium (the verification page's and the
# memoria's tests), GoAccess (the memoria's unique visitors, counted independently) and njs
# (nginx's JavaScript engine, which shares CloudFront Functions' restrictions: the edge tests
# run on it as well as on Node; edge/README.md).
tools:
	@missing=""; \
	command -v minisign >/dev/null 2>&1 || missing="$$missing minisign"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v goaccess >/dev/null 2>&1 || missing="$$missing goaccess"; \
	command -v njs >/dev/null 2>&1 || missing="$$missing njs"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The Lambda layer, built without Docker (pip --platform); skipped when its inputs are unchanged.
layer: venv
	$(BIN)/python layers/build.py

# npm's devDependencies (package.json): the CDK CLI, and iam-simulate, the independent IAM
# evaluator the IAM tests hold the project's against (docs/iam-oracle.md).
NPM_STAMP := node_modules/.installed
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Both stacks, offline, into cdk.out/ (CLI pinned in package.json), then cfn-lint on them.
synth: venv layer $(NPM_STAMP)
	npx cdk synth --quiet
	$(BIN)/cfn-lint

demo: venv
	$(BIN)/difusion demo

# The benchmark: ours against unzip + sha256sum and against awscli's s3 sync (its own venv:
# awscli pins a botocore of its own). Writes out/bench/.
AWSCLI := .venv-awscli/bin/aws
$(AWSCLI): requirements-awscli.txt
	$(PYTHON) -m venv .venv-awscli
	.venv-awscli/bin/pip install --quiet -r requirements-awscli.txt
	touch $@

bench: venv $(AWSCLI)
	$(BIN)/pip install --quiet -r requirements-bench.txt
	$(BIN)/python -m difusion.local.bench $(AWSCLI)

test: venv tools layer $(NPM_STAMP)
	node --test edge/ difusion/web/
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=30

test-unit: venv $(NPM_STAMP)
	$(BIN)/pytest tests/unit

test-integration: venv tools $(NPM_STAMP)
	$(BIN)/pytest tests/integration

test-e2e: venv tools
	$(BIN)/pytest tests/e2e

test-infrastructure: venv layer
	$(BIN)/pytest tests/infrastructure

# The fault tier in full (`make test` runs only its slice, tests/chaos): nights with 5 % and
# with 20 % of the functions' AWS calls failing, then the functions SIGKILLed at 50 random
# calls and run again, then a step killed at five points held to heal within five minutes of
# story time. New seeds every run, printed; CHAOS_SEED=N replays. Each part runs
# even if one before it failed; figures in out/chaos/. CHAOS_JOBS runs that many at once.
CHAOS_SEED ?=
CHAOS_JOBS ?= 1
CHAOS := $(BIN)/python -m difusion.local.chaos
CHAOS_ARGS = --jobs $(CHAOS_JOBS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))
chaos: venv
	@status=0; \
	$(CHAOS) nights --rate 0.05 --nights 4 $(CHAOS_ARGS) || status=1; \
	$(CHAOS) nights --rate 0.20 --nights 4 $(CHAOS_ARGS) || status=1; \
	$(CHAOS) crash --points 50 $(CHAOS_ARGS) || status=1; \
	DIFUSION_HEAL_BOUND_SECONDS=300 $(BIN)/pytest -q -s \
	  tests/integration/test_crash_healing.py || status=1; \
	exit $$status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-awscli out cdk.out layers/build node_modules .pytest_cache .mypy_cache .ruff_cache
