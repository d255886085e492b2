#!/usr/bin/env bash
# Runs the main example, examples/tour.rs, in an embedded CPython with numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
exec cargo run --quiet --example tour
