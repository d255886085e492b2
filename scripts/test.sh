#!/usr/bin/env bash
# Runs the whole test suite: Rust unit, integration and doc tests (embedding CPython with
# numpy from the local virtualenv that scripts/env.sh creates), then the Python-side suite
# (the test extension module built for each installed CPython 3.9+, tested with pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
(
  . scripts/env.sh
  echo "== cargo test (Python: $("$PYO3_PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
  cargo test --workspace --exclude pybuf-testmod --all-features
)
# The release tests again on the newest CPython present (3.12+ runs the PEP 688
# `__release_buffer__` cases, which 3.11 skips), in a target folder of their own.
. scripts/pythons.sh
if found=$(newest_python); then
  (
    v=${found%% *} newest=${found#* }
    export PYBUF_PYTHON=$newest PYBUF_VENV=$PWD/.venv-py$v PYTHONPATH= PYO3_PYTHON=
    . scripts/env.sh
    echo "== cargo test --test release (Python: $v)"
    CARGO_TARGET_DIR=target/embed-py$v cargo test --all-features --test release
    [ "${PYBUF_DISCARD_TARGETS:-0}" = 1 ] && rm -rf "target/embed-py$v" || true
  )
else
  echo "== no CPython 3.12+ found: the PEP 688 release tests ran as skips only"
fi
bash scripts/pytest.sh
