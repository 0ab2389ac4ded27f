#!/usr/bin/env bash
# Runs the test suite. pytest's "no tests collected" (exit 5) is a failure here, never a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

"$BIN/python" -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$status"
