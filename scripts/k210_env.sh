#!/usr/bin/env bash
# Create the nncase 1.9 virtualenv used to compile and simulate K210 kmodels (V5).
#
# nncase 1.9 ships wheels for CPython <= 3.10 only, so the venv is built from a
# 3.10 interpreter (pyenv's, or $FACEAGENT_PY310) and kept apart from .venv.
# Idempotent: a venv whose stamp matches the pins is reused as is.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FACEAGENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faceagent}"
venv="$cache/venvs/nncase"
pins=(
  "nncase==1.9.0.20230322"
  "numpy==1.26.4"
  "onnx==1.16.2"
  "onnxsim==0.4.36"
  "onnxruntime==1.19.2"
  "pillow==10.4.0"
)
stamp="$(printf '%s\n' "${pins[@]}")"

find_py310() {
  if [[ -n "${FACEAGENT_PY310:-}" ]]; then echo "$FACEAGENT_PY310"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local v
    v="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10\.[0-9]+$' | sort -V | tail -1 || true)"
    if [[ -n "$v" ]]; then echo "$(pyenv root)/versions/$v/bin/python"; return; fi
  fi
  command -v python3.10 || true
}

if [[ -f "$venv/.faceagent-pins" ]] && [[ "$(cat "$venv/.faceagent-pins")" == "$stamp" ]]; then
  echo "nncase venv up to date: $venv"
  exit 0
fi

py="$(find_py310)"
if [[ -z "$py" ]] || ! "$py" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  echo "k210_env: no CPython 3.10 found (nncase 1.9 needs <= 3.10); set FACEAGENT_PY310=/path/to/python3.10" >&2
  exit 1
fi

echo "creating nncase venv at $venv with $py"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
# onnxruntime must be imported before nncase, else the process segfaults.
"$venv/bin/python" -c 'import onnxruntime, nncase; print("nncase", nncase.__version__ if hasattr(nncase, "__version__") else "1.9")'
printf '%s\n' "${pins[@]}" >"$venv/.faceagent-pins"
echo "nncase venv ready: $venv (repo $repo)"
