# Shared setup for scripts/demo.sh and scripts/test.sh: a project venv with the CPU torch pinned first.
# Sourced, not run. Re-running is cheap: pip skips what is installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="${OMNIRETRIEVE_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# torch first and pinned: an unpinned torch pulled in by a dependency would be a multi-GB CUDA build.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==${OMNIRETRIEVE_TORCH:-2.13.0}"
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false ANONYMIZED_TELEMETRY=False
