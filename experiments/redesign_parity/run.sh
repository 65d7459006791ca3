#!/usr/bin/env bash
# RESULTS.md §12: same seeds give identical figures before and after the redesign (issue 19).
# Usage: bash experiments/redesign_parity/run.sh TAG [SRC]
#   TAG names the outputs (e.g. before / after); SRC is the src/ of the tree to run (default: the
#   installed lmrec). For the old tree: git worktree add /tmp/oldtree 2b1f592, SRC=/tmp/oldtree/src.
# Then: python experiments/redesign_parity/compare.py OUT/before_ml.json OUT/after_ml.json
set -euo pipefail
TAG=$1
[ -n "${2:-}" ] && export PYTHONPATH=$2
OUT=${OUT:-benchmarks/out/redesign_parity}
C=$OUT/cache
mkdir -p "$OUT"
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
P="--param lm.cache_dir=$C --param lm.num_threads=1"
lmrec evaluate --data ml-100k --models pop,ease,sasrec,lm --split loo --param sasrec.epochs=5 --param lm.epochs=3 $P --json "$OUT/${TAG}_ml.json"
lmrec evaluate --data "${LMREC_OFFICE:-../shared/datasets/amazon-office}" --models pop,lm --split loo --param lm.epochs=3 $P --json "$OUT/${TAG}_office.json"
lmrec evaluate --data ml-100k --models lm --split loo --param lm.epochs=2 $P --param lm.loss=bpr --param lm.content_weight=3 --json "$OUT/${TAG}_ml_bpr.json"
lmrec evaluate --data ml-100k --models lm --split loo --protocol stream --windows 2 --param lm.epochs=2 --param lm.update_epochs=2 $P --json "$OUT/${TAG}_stream.json"
python "$(dirname "$0")/scenario_fingerprint.py" --cache "$C" > "$OUT/${TAG}_scenario.json"
