#!/usr/bin/env bash
# Runs the whole test suite: Rust unit, integration and doc tests (embedding CPython with
# numpy from the local virtualenv that scripts/env.sh creates).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
echo "== cargo test (Python: $("$PYO3_PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
cargo test --workspace --exclude pybuf-testmod --all-features
