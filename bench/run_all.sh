#!/bin/sh
# Every benchmark in turn, each starting and cleaning up what it needs.
# Run from the repository's root as root: python -m bench.<name> alone runs one.
set -e
cd "$(dirname "$0")/.."
for bench in machine copy redeploy small_app endpoint upload_memory workers; do
    echo "== python -m bench.$bench"
    .venv/bin/python -m "bench.$bench"
done
