#!/usr/bin/env bash
# Install and run the demo: the whole system in one process on the embedded defaults.
# Extra arguments go to `voltmesh demo` (e.g. --duration 60 --http-port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/voltmesh demo "$@"
