#!/usr/bin/env bash
# Install and run the tests: system packages, Python packages, lint, types, test suite.
# Long soaks are opt-in: VOLTMESH_SOAK=1 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
scripts/bootstrap.sh
echo "== ruff" && .venv/bin/ruff check .
echo "== mypy --strict" && .venv/bin/mypy
echo "== pytest"
# the slowest tests are listed at the end, so a growing run shows where the time goes
.venv/bin/pytest --durations=25 "$@"
