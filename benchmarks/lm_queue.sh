#!/usr/bin/env bash
# The issue-4 benchmark queue in the order that gives every target a first figure soonest: seed 0 of
# every experiment, then seeds 1 and 2, then the ablation. Finished runs are skipped (lm_bench.py
# resumes), so the queue can be stopped and restarted. Aggregate with benchmarks/lm_report.py.
# Usage: bash benchmarks/lm_queue.sh [--threads N]   (torch threads per run, default 1)
set -euo pipefail
T=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        --threads) T="$2"; shift 2 ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (usage: bash benchmarks/lm_queue.sh [--threads N])" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=.venv/bin/python
for seed in 0 1 2; do
    $PY benchmarks/lm_bench.py loo --data ml-100k --models lm,ease,sasrec --seeds $seed --threads $T
    $PY benchmarks/lm_bench.py loo --data office --models lm,ease,sasrec --seeds $seed --threads $T
    $PY benchmarks/lm_bench.py cold --data office --models lm,tfidf --seeds $seed --threads $T
done
$PY benchmarks/lm_bench.py ablation --data office --variants text,id,no-user-text,bpr,no-rating --seeds 0 --threads $T
