#!/usr/bin/env bash
# Creates .venv and installs blurbkit with its test extras.
# torch is pinned to 2.13.0; on the project machines pip finds the CPU wheel on local disk.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "blurbkit installed in .venv (activate with: source .venv/bin/activate)"
