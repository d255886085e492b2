#!/usr/bin/env bash
# The stable ABI (pyo3's `abi3-py311`): the Rust tests whose code paths differ under the
# limited API, and the Python suite with one abi3 wheel on every CPython 3.11+.
#
# 1. A build for abi3 below 3.11 must stop with pybuf's one message (build.rs); clippy of
#    the limited-API code paths (the library, its tests, the python/ module).
# 2. `cargo test --features pyo3/abi3-py311` of the unit tests (release queue, name table)
#    and the core_*, release and export* integration tests, embedding CPython 3.11 (where
#    every drop is queued: the tests check that documented behaviour) and the newest 3.12+
#    (exact attached check), each in a target folder of its own (target/abi3-pyX.Y).
# 3. scripts/pytest-abi3.sh: python/ built once as a cp311-abi3 wheel, pytest on 3.11+.
#
#   bash scripts/test-abi3.sh            # all three
#   bash scripts/test-abi3.sh --rust     # 1 and 2 only
#   PYBUF_DISCARD_TARGETS=1  deletes each target folder once its tests ran (CI: disk)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

rust_only=0
[ "${1:-}" = "--rust" ] && rust_only=1

tests=(--lib --test release)
for f in tests/core_*.rs tests/export*.rs; do tests+=(--test "$(basename "$f" .rs)"); done

(
  . scripts/env.sh
  echo "== abi3 below 3.11 is refused (cargo check --features pyo3/abi3-py310)"
  log=$(mktemp)
  if CARGO_TARGET_DIR=$root/target/abi3-py310 cargo check -p pybuf --lib \
      --features pyo3/abi3-py310 >"$log" 2>&1; then
    echo "pybuf compiled for abi3-py310; it must refuse with one message" >&2
    exit 1
  fi
  grep -F "error: pybuf@" "$log" | grep -F "limited API (stable ABI, abi3) only from CPython 3.11" \
    || { cat "$log" >&2; echo "abi3-py310: not pybuf's message" >&2; exit 1; }
  rm -f "$log"
  [ "${PYBUF_DISCARD_TARGETS:-0}" = 1 ] && rm -rf "$root/target/abi3-py310"

  v=$("$PYO3_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  echo "== cargo clippy --features pyo3/abi3-py311 (the limited-API code paths)"
  CARGO_TARGET_DIR=$root/target/abi3-py$v cargo clippy --all-targets --all-features \
    --features pyo3/abi3-py311 -- -D warnings
  CARGO_TARGET_DIR=$root/target/abi3-py$v cargo clippy -p pybuf-testmod --features abi3 \
    -- -D warnings
  echo "== cargo test --features pyo3/abi3-py311 (Python: $v)"
  CARGO_TARGET_DIR=$root/target/abi3-py$v cargo test --all-features \
    --features pyo3/abi3-py311 "${tests[@]}"
  [ "${PYBUF_DISCARD_TARGETS:-0}" = 1 ] && rm -rf "$root/target/abi3-py$v" || true
)

. scripts/pythons.sh
if found=$(newest_python); then
  (
    v=${found%% *} newest=${found#* }
    export PYBUF_PYTHON=$newest PYBUF_VENV=$root/.venv-py$v PYTHONPATH= PYO3_PYTHON=
    . scripts/env.sh
    echo "== cargo test --features pyo3/abi3-py311 (Python: $v)"
    CARGO_TARGET_DIR=$root/target/abi3-py$v cargo test --all-features \
      --features pyo3/abi3-py311 "${tests[@]}"
    [ "${PYBUF_DISCARD_TARGETS:-0}" = 1 ] && rm -rf "$root/target/abi3-py$v" || true
  )
else
  echo "== no CPython 3.12+ found: the abi3 tests ran on 3.11 only"
fi

[ "$rust_only" = 1 ] || bash scripts/pytest-abi3.sh
