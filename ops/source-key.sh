#!/usr/bin/env bash
# Prints a 16-hex key of everything the compiled risk engine is built from (setup.py, pyproject.toml,
# the Cython wrapper and the C++ sources and headers, names and contents), so ops/bootstrap.sh
# rebuilds the extension when any of them changes. Usage: ops/source-key.sh [ROOT]
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$ROOT"
shopt -s nullglob
files=(setup.py pyproject.toml risk_core/*.pyx risk_core/*.pxd risk_core/src/*.cpp risk_core/src/*.hpp
       risk_core/include/risk_core/*.hpp)
# a pattern that matches nothing must not pass silently (the old key named a folder that did not exist)
for pattern in 'risk_core/*.pyx' 'risk_core/src/*.cpp' 'risk_core/include/risk_core/*.hpp'; do
  compgen -G "$pattern" >/dev/null || { echo "source-key: nothing matches $ROOT/$pattern" >&2; exit 1; }
done
for file in "${files[@]}"; do
  printf '%s\0' "$file"
  cat "$file"
done | sha256sum | cut -c1-16
