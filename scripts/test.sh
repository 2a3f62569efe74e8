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
# three test processes (pytest-xdist; most tests wait on sockets and brokers, so three share
# two cores well; each gets its own port range, see bench/procs.py); one file stays on one
# process. VOLTMESH_TEST_WORKERS=0 runs them in this process. The slowest tests are listed at
# the end, so a growing run shows where the time goes.
workers=${VOLTMESH_TEST_WORKERS:-3}
if [ "$workers" = "0" ]; then
    .venv/bin/pytest --durations=25 "$@"
else
    .venv/bin/pytest -n "$workers" --dist loadfile --durations=25 "$@"
fi
