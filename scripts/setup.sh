#!/usr/bin/env bash
# Set up ogasearch on a Debian machine: system packages and a venv in .venv.
#
#   bash scripts/setup.sh runtime   what ogasearch runs on: libarchive, the package and its
#                                   runtime dependencies, and what exports the model once
#                                   (scripts/demo.sh uses this)
#   bash scripts/setup.sh test      all of that, plus what the test suite needs: PostgreSQL,
#                                   Chromium, the Dungeon Crawl tiles, milvus, playwright, ...
#                                   (scripts/test.sh and CI use this; the default)
#
# Idempotent: re-running only installs what is missing, and apt (through sudo when not root)
# runs only when a system package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
case "$mode" in
  # libarchive: the archive reader (libarchive-c loads the shared library).
  runtime) APT_PACKAGES="libarchive13"; EXTRAS="model" ;;
  # PostgreSQL: tests of the scale-out catalog; Chromium: UI tests; Dungeon Crawl tiles: CC0
  # pixel art for the embedding tests and the quality evaluation; Teeworlds (CC-BY-SA 3.0),
  # Chromium B.S.U. (Clarified Artistic) and Minetest Game (CC-BY-SA 3.0) art: the dev set's
  # sprites with partial alpha and 16x16 textures (bench/devset.py), read in place.
  test) APT_PACKAGES="libarchive13 postgresql chromium crawl-tiles-data teeworlds-data chromium-bsu-data minetest-data"
        EXTRAS="model,variants,milvus,scale,test" ;;
  *) echo "usage: bash scripts/setup.sh [runtime|test]" >&2; exit 2 ;;
esac

# Installed? The library itself for libarchive (its package is named libarchive13t64 on newer
# Debian), the package for the rest.
present() {
  case "$1" in
    libarchive13) PATH="$PATH:/sbin:/usr/sbin" ldconfig -p | grep 'libarchive\.so\.13 ' >/dev/null ;;
    *) dpkg -s "$1" >/dev/null 2>&1 ;;
  esac
}

missing=""
for p in $APT_PACKAGES; do
  present "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: missing system packages:$missing; install them as root (apt-get install$missing) and run again" >&2
      exit 1
    fi
    SUDO="sudo"
  fi
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
# torch is only needed once, to export the default model to ONNX (the "model" extra).
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[$EXTRAS]"
echo "setup ($mode): done ($(python --version), venv in .venv)"
