#!/usr/bin/env bash
# Set up (if needed) and run the offline demo: a local copy of OpenGameArt.org with a bundled
# CC0 sample is crawled, indexed and served; open the URL it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
. .venv/bin/activate
exec ogasearch demo "$@"
