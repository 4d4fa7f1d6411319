#!/usr/bin/env bash
# Create ./.venv with lab6 installed in editable mode and its pinned dependencies.
# Safe to run again: an existing .venv is reused and only missing packages are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
echo "bootstrap: installing lab6 and its pinned dependencies into .venv (a few minutes the first time)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
echo "bootstrap: .venv is ready"
