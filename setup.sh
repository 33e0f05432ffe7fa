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
# The report's browser tests drive Debian's Chromium through Playwright (never a browser download).
# Installed here when missing and possible (root or password-less sudo, apt-get); else they skip.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  apt_install() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }
  if { [ -z "$SUDO" ] || $SUDO true 2>/dev/null; } && { apt_install || { $SUDO apt-get update -qq >/dev/null 2>&1 && apt_install; }; }; then
    echo "installed Debian's chromium for the browser tests"
  else
    echo "could not install chromium (apt-get): the browser tests will skip"
  fi
fi
echo "blurbkit installed in .venv (activate with: source .venv/bin/activate)"
