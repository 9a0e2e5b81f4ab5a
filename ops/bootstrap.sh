#!/usr/bin/env bash
# Installs everything this project needs on a fresh machine, idempotently and from caches:
#   Debian packages (redis-server, kcat, chromium for the dashboard test), a Python venv keyed by a
#   hash of requirements.txt and requirements-test.txt under ~/.cache/algo, and the project itself (editable, which compiles
#   the C++ risk engine).
# Kafka and Apicurio jars are fetched by `algo stack up` on its first start (cached in ~/.cache/algo).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ALGO_CACHE_DIR:-$HOME/.cache/algo}
PYTHON=${PYTHON:-python3}
mkdir -p "$CACHE"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v kcat >/dev/null || missing+=(kcat)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v g++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

key=$( (cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt"; "$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
VENV="$CACHE/venv-$key"
if [ ! -f "$VENV/.complete" ]; then
  echo "bootstrap: creating $VENV (first run on this machine takes a few minutes)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip==25.3 setuptools==80.9.0 wheel==0.45.1
  "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"
  touch "$VENV/.complete"
fi
ln -sfn "$VENV" "$ROOT/.venv"

# The project itself: editable, so the checkout is the code; this compiles the Cython extension.
stamp="$ROOT/.venv-installed"
src_key=$(bash "$ROOT/ops/source-key.sh" "$ROOT")
# (the venv is shared by checkouts with the same requirements: reinstall when it points at another one)
installed_from=$(cd / && "$VENV/bin/python" -c 'import os, streams; print(os.path.dirname(os.path.dirname(streams.__file__)))' 2>/dev/null || true)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$src_key:$VENV" ] || [ "$installed_from" != "$ROOT" ]; then
  echo "bootstrap: installing the project into $VENV"
  (cd "$ROOT" && "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .)
  echo "$src_key:$VENV" > "$stamp"
fi
