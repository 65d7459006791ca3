#!/usr/bin/env bash
# Quick start 2: lint, format and type checks, then the test suite. Extra arguments go to pytest (and skip the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The Redis-backed profile store is tested against a real redis-server; install it where we can.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
        || echo "redis-server could not be installed; the Redis store tests will be skipped"
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
