#!/usr/bin/env bash
# The demo command: installs what is missing (ops/bootstrap.sh), then `algo demo`: the local stack,
# provisioning, the bar and persistence workers, a replay of bundled market data, and a summary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash ops/bootstrap.sh
exec .venv/bin/algo demo "$@"
