#!/usr/bin/env bash
# Quick start 1: the main job end to end on the bundled MovieLens-100K (no servers, no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/lmrec demo --out "${1:-runs/demo}"
