#!/usr/bin/env bash
# Quick start 2: lint, format and type checks, then the test suite. Extra arguments go to pytest (and skip the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Engines the tests drive for real, from Debian's packages where we can install them: redis-server
# (the Redis store), HAProxy (replicas behind a load balancer) and Chromium with its driver (the console's browser test). Tests that
# need one skip, naming it, where it could not be installed.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
        || echo "could not install ${missing[*]}; the tests that need them will be skipped"
fi
# OpenMP threads that spin while waiting make torch ~10x slower when the 2 cores are shared.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# The whole run (no arguments, as CI calls it) first checks lint, formatting and types; any error fails it.
# With arguments (a targeted pytest run) the checks are skipped.
if [ "$#" -eq 0 ]; then
    echo "== ruff check"; .venv/bin/ruff check src tests benchmarks experiments
    echo "== ruff format --check"; .venv/bin/ruff format --check src tests benchmarks experiments
    echo "== mypy src/lmrec"; .venv/bin/mypy
fi
exec .venv/bin/python -m pytest -q "$@"
