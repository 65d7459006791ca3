#!/usr/bin/env bash
# Quick start 1: the main job end to end on the bundled MovieLens-100K (no servers, no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# OpenMP threads that spin while waiting make torch ~10x slower when the 2 cores are shared.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec .venv/bin/lmrec demo --out "${1:-runs/demo}"
