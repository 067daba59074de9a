#!/usr/bin/env bash
# Set up (if needed), lint, type-check, and run the tests.
#   bash scripts/test.sh          the whole suite, slow tests included (what CI runs)
#   bash scripts/test.sh --fast   the fast tier: -m "not slow" (for the edit loop)
# Any other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi
bash scripts/setup.sh test
. .venv/bin/activate
ruff check src tests bench
ruff format --check src tests bench
mypy
if [ "$fast" = 1 ]; then
  python -m pytest -q -m "not slow" "$@"
else
  python -m pytest -q "$@"
fi
