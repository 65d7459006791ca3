#!/usr/bin/env bash
# GPU check of lmrec (issue 20): needs a CUDA GPU; prints a message and exits 0 without one.
#
# 1. Fits `lm` on MovieLens-100K (leave-one-out, seed 2020) on cuda and on cpu with the same seed
#    and prints both test NDCG@10 and the wall-clock speed-up.
# 2. Fits `lm` on Amazon Office with the text encoder fine-tuned by LoRA inside training
#    (lm.encoder.finetune=lora) and with the encoder frozen, both on cuda, and prints both NDCG@10.
#
# Usage (from the repository root):
#   bash benchmarks/gpu_check.sh [OFFICE_DIR] [OUT_DIR]
# OFFICE_DIR defaults to $LMREC_OFFICE, else ../shared/datasets/amazon-office; OUT_DIR to
# benchmarks/out/gpu_check. EPOCHS (default 30) caps the epochs of every fit (early stopping on
# validation NDCG@10 still applies). PYTHON defaults to .venv/bin/python. GPU_CHECK_DEVICE=cpu runs
# the "cuda" fits on the CPU instead (a smoke test of the script itself; its figures mean nothing).
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
OFFICE=${1:-${LMREC_OFFICE:-../shared/datasets/amazon-office}}
OUT=${2:-benchmarks/out/gpu_check}
EPOCHS=${EPOCHS:-30}
export HF_HUB_OFFLINE=1

GPU=${GPU_CHECK_DEVICE:-cuda}
if [ "$GPU" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing was run."
    echo "gpu_check: run this script on a machine with a GPU to record the cuda-vs-cpu and LoRA figures."
    exit 0
fi
"$PYTHON" -c "import torch; print('gpu_check: device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', '| torch', torch.__version__)"
mkdir -p "$OUT"

run() {  # run NAME DEVICE DATA [extra lmrec evaluate arguments...]
    local name=$1 device=$2 data=$3
    shift 3
    local start
    start=$(date +%s.%N)
    "$PYTHON" -m lmrec.cli evaluate --data "$data" --models lm --split loo --seed 2020 --device "$device" \
        --param "lm.optim.epochs=$EPOCHS" --json "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1
    "$PYTHON" -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)" > "$OUT/$name.seconds"
}

echo "gpu_check: 1/2 lm on ML-100K, cuda then cpu (same seed)"
run ml100k_cuda "$GPU" ml-100k
run ml100k_cpu cpu ml-100k

echo "gpu_check: 2/2 lm on Office, LoRA-tuned vs frozen text encoder (cuda)"
if [ -d "$OFFICE" ]; then
    run office_frozen "$GPU" "$OFFICE"
    run office_lora "$GPU" "$OFFICE" --param lm.encoder.finetune=lora
else
    echo "gpu_check: Office data not found at $OFFICE; skipped part 2"
fi

"$PYTHON" - "$OUT" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def figure(name: str) -> tuple[float, float] | None:
    path = out / f"{name}.json"
    if not path.exists():
        return None
    ndcg = json.loads(path.read_text())["results"]["lm"]["ndcg@10"]
    return float(ndcg), float((out / f"{name}.seconds").read_text())


cuda, cpu = figure("ml100k_cuda"), figure("ml100k_cpu")
if cuda and cpu:
    print(f"ML-100K lm  cuda: NDCG@10 {cuda[0]:.4f} in {cuda[1]:.1f} s | cpu: NDCG@10 {cpu[0]:.4f} in {cpu[1]:.1f} s"
          f" | speed-up {cpu[1] / cuda[1]:.2f}x")
frozen, lora = figure("office_frozen"), figure("office_lora")
if frozen and lora:
    print(f"Office lm (cuda)  frozen encoder: NDCG@10 {frozen[0]:.4f} ({frozen[1]:.1f} s) | "
          f"LoRA-tuned encoder: NDCG@10 {lora[0]:.4f} ({lora[1]:.1f} s)")
PY
