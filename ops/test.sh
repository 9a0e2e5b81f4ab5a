#!/usr/bin/env bash
# The test command: installs what is missing (ops/bootstrap.sh), builds and runs the C++ tests
# (ctest), checks the import contracts (lint-imports), then the whole pytest suite. Integration tests start the local stack (Kafka, Apicurio,
# Postgres, Redis) themselves through the `local_stack` fixture and stop it at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash ops/bootstrap.sh
if [ -f risk_core/CMakeLists.txt ]; then
  cmake -S risk_core -B build/risk_core -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build/risk_core -j 2 >/dev/null
  ctest --test-dir build/risk_core --output-on-failure
fi
# the layers run one way and nothing imports in a cycle (contracts in pyproject.toml)
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
