#!/usr/bin/env bash
# Set up everything ogasearch needs on a fresh Debian machine: system packages and a venv.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# System packages: libarchive (archive reader), PostgreSQL (tests of the scale-out catalog),
# Chromium (UI tests), Dungeon Crawl tiles (CC0 pixel art for the quality evaluation).
APT_PACKAGES="libarchive13 postgresql chromium crawl-tiles-data"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: apt-get install$missing"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch comes from a local file; pinning it keeps pip from pulling CUDA builds.
# torch is only needed once, to export the default model to ONNX.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[model,milvus,scale,test]"
echo "setup: done ($(python --version), venv in .venv)"
