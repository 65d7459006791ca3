#!/usr/bin/env bash
# Idempotent set-up of a separate venv for RecBole 1.2.1 (benchmarks/.venv-recbole, git-ignored).
#
# RecBole is a benchmark reference only; it never enters lmrec's own venv. Its wheel pins
# ray<=2.6.3 (only quick_start's hyper-parameter tuning imports it) and asks for plotly/tabulate
# (hyper-tuning and pretty tables only), so recbole itself is installed with --no-deps and only what
# `import recbole.{config,data,model,trainer,utils}` and a plain training run need is added:
#   - numpy 1.26: RecBole's Config.compatibility_settings() sets np.float = np.float_ etc.;
#     numpy>=2 removed np.float_, so Config() fails under numpy 2.
#   - pandas 2.2 / scipy 1.13 / scikit-learn 1.5: contemporaries of numpy 1.26 (pandas 3's
#     copy-on-write would silently change RecBole's in-place DataFrame edits).
#   - colorlog==4.7.2, colorama==0.4.4: RecBole's exact pins (its logger uses them).
#   - texttable, tensorboard (torch.utils.tensorboard.SummaryWriter is imported by recbole.utils),
#     psutil, thop (--no-deps; only get_flops uses it), tqdm, pyyaml.
# torch is installed first and pinned to the same CPU build as lmrec's venv.
# pip then prints "recbole 1.2.1 requires plotly / ray / tabulate, which is not installed": expected.
# RecBole must run with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 under torch>=2.6 (run_recbole.py sets it).
set -euo pipefail
cd "$(dirname "$0")/.."        # benchmarks/
PY=${PYTHON:-python3}
VENV=.venv-recbole
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
# keep the venv out of git even where .gitignore does not name it (as Python >= 3.13's venv does)
[ -f "$VENV/.gitignore" ] || echo '*' > "$VENV/.gitignore"
stamp=$VENV/.recbole-setup
want="$(sha256sum recbole/setup_recbole_env.sh | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
$VPY -m pip install -q "torch==2.13.0"
$VPY -m pip install -q --no-deps "recbole==1.2.1" "thop==0.1.1.post2209072238"
$VPY -m pip install -q \
    "numpy==1.26.4" "pandas==2.2.3" "scipy==1.13.1" "scikit-learn==1.5.2" "python-dateutil<3" \
    "colorlog==4.7.2" "colorama==0.4.4" "texttable>=1.6" "tensorboard>=2.5" "psutil>=5.9" \
    "tqdm>=4.48" "pyyaml>=5.1"
# The check that matters: every sub-package a plain run touches imports, and Config() builds.
$VPY - <<'EOF'
import recbole, recbole.config, recbole.data, recbole.trainer, recbole.utils
import recbole.model.general_recommender, recbole.model.sequential_recommender
import numpy
assert recbole.__version__ == "1.2.1", recbole.__version__
assert numpy.__version__.startswith("1."), numpy.__version__
EOF
echo "$want" > "$stamp"
