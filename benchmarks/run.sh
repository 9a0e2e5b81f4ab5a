#!/usr/bin/env bash
# Runs the backtest benchmark in its own venv (vectorbt, backtesting.py; never in the main venv).
#   bash benchmarks/run.sh [--json] [other flags of benchmarks/backtest.py]
# The venv lives under ~/.cache/algo/bench-venv-<hash of benchmarks/requirements.txt + python>;
# the project is installed into it as a regular (non-editable) wheel build, which compiles the
# C++ engine with -O3, so the benchmark measures what `pip install .` produces.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ALGO_CACHE_DIR:-$HOME/.cache/algo}
PYTHON=${PYTHON:-python3}
mkdir -p "$CACHE"

key=$( (cat "$ROOT/benchmarks/requirements.txt"; "$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
VENV="$CACHE/bench-venv-$key"
if [ ! -f "$VENV/.complete" ]; then
  echo "benchmarks: creating $VENV (first run takes a few minutes)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip==25.3
  "$VENV/bin/pip" install -q -r "$ROOT/benchmarks/requirements.txt"
  touch "$VENV/.complete"
fi

# (Re)install the project when its engine sources changed.
src_key=$(cd "$ROOT" && cat setup.py $(ls risk_core/*.py risk_core/*.pyx risk_core/*.pxd risk_core/src/*.cpp risk_core/src/*.hpp risk_core/include/risk_core/*.hpp 2>/dev/null) | sha256sum | cut -c1-16)
if [ ! -f "$VENV/.project" ] || [ "$(cat "$VENV/.project")" != "$src_key" ]; then
  echo "benchmarks: installing the project (compiles risk_core with -O3)" >&2
  build=$(mktemp -d)
  # copy the tree so that no in-place build products leak into or out of the checkout
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$build" 2>/dev/null || true)
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation --force-reinstall "$build" >&2
  rm -rf "$build"
  echo "$src_key" > "$VENV/.project"
fi

if [ "${1:-}" = "--python" ]; then shift; exec "$VENV/bin/python" "$@"; fi
# run from outside the checkout so `import risk_core` resolves to the installed wheel; no idle
# OpenBLAS worker threads (nothing here uses BLAS) competing with the sweep for the second core
cd "$CACHE"
export OPENBLAS_NUM_THREADS=1
exec "$VENV/bin/python" "$ROOT/benchmarks/backtest.py" "$@"
