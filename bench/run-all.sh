#!/usr/bin/env bash
# Every benchmark in turn; each prints its numbers and ratios against the peers measured in the same run.
set -u
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
rc=0
for b in bench/bench_*.py; do
  printf '\n===== %s =====\n' "$b"
  "$py" "$b" || rc=1
done
exit $rc
