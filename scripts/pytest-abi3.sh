#!/usr/bin/env bash
# Builds the test extension module (python/, `pybuf_testmod`) ONCE as a stable-ABI wheel
# (pyo3's `abi3-py311`, through the python/ crate's `abi3` feature: tagged cp311-abi3) and
# runs the whole pytest suite (python/tests/) with that one wheel installed into the venv of
# every installed CPython 3.11+, as a user of an abi3 wheel would.
#
# The venvs are scripts/pytest.sh's `.venv-pyX.Y` (shared: made by scripts/env.sh on first
# use). The per-version module is uninstalled first, and each run checks that Python imports
# the `.abi3.so` (a leftover `.cpython-3XY-*.so` would win the import and be tested instead);
# the next scripts/pytest.sh run puts its own build back with `maturin develop`. The wheel is
# built in `target/pytest/abi3`, with the oldest of those interpreters.
#
#   PYBUF_ABI3_VERSIONS="3.11 3.13"  restricts the versions (default: 3.11 3.12 3.13)
#   extra arguments are passed to pytest (e.g. `-k norm -x`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

versions=${PYBUF_ABI3_VERSIONS:-"3.11 3.12 3.13"}

. scripts/pythons.sh

# Sources env.sh for version $1's shared venv (in the calling subshell).
use_venv() {
  unset PYTHONPATH PYO3_PYTHON
  export PYBUF_PYTHON=$1 PYBUF_VENV=$root/.venv-py$2
  . scripts/env.sh
}

installed=()
for v in $versions; do
  if [ "${v#3.}" -lt 11 ]; then
    echo "== abi3 wheel, Python $v: skipped (the buffer protocol is in the limited API from 3.11)"
    continue
  fi
  if python=$(find_python "$v"); then
    installed+=("$v:$python")
  else
    echo "== abi3 wheel, Python $v: skipped (not installed)"
  fi
done
[ ${#installed[@]} -gt 0 ] || { echo "== abi3 wheel: no CPython 3.11+ installed" >&2; exit 1; }

wheels=$root/target/pytest/abi3/wheels
rm -rf "$wheels"
first=${installed[0]}
echo "== abi3 wheel: building once with Python ${first%%:*}"
(
  set -euo pipefail
  use_venv "${first#*:}" "${first%%:*}"
  export CARGO_TARGET_DIR=$root/target/pytest/abi3
  "$PYBUF_VENV/bin/maturin" build --quiet --features abi3 --manifest-path python/Cargo.toml \
    --interpreter "$PYBUF_VENV/bin/python" --out "$wheels"
)
wheel=$(ls "$wheels"/pybuf_testmod-*-cp311-abi3-*.whl)
# CI (PYBUF_DISCARD_TARGETS=1): only the wheel is needed from here on.
[ "${PYBUF_DISCARD_TARGETS:-0}" = 1 ] \
  && find "$root/target/pytest/abi3" -mindepth 1 -maxdepth 1 ! -name wheels -exec rm -rf {} +
echo "== abi3 wheel: $(basename "$wheel")"

# Every CPython symbol the module imports must be in the 3.11 stable ABI (the list CPython's
# own test_stable_abi_ctypes checks; skipped where that test is not installed).
python311=$(find_python 3.11 || true)
manifest=""
[ -n "$python311" ] && manifest=$("$python311" -c '
import os, test
path = os.path.join(os.path.dirname(test.__file__), "test_stable_abi_ctypes.py")
print(path if os.path.exists(path) else "")' 2>/dev/null || true)
if [ -n "$manifest" ] && command -v nm >/dev/null; then
  so=$(mktemp -d)
  "$python311" -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(sys.argv[2], [n for n in z.namelist() if n.endswith(".so")])' "$wheel" "$so"
  nm -D --undefined-only "$so"/pybuf_testmod/*.so | awk '{print $NF}' | grep -E '^_?Py' \
    | "$python311" -c '
import re, sys
stable = set(re.findall(r"\"([A-Za-z_][A-Za-z0-9_]*)\"", open(sys.argv[1]).read()))
used = sorted(set(sys.stdin.read().split()))
outside = [s for s in used if s not in stable]
if outside:
    sys.exit(f"outside the 3.11 stable ABI: {outside}")
print(f"   {len(used)} CPython symbols imported, all in the 3.11 stable ABI")' "$manifest"
  rm -rf "$so"
else
  echo "   (no CPython 3.11 test suite or nm here: the symbol check is skipped)"
fi

summary=()
failed=0
for entry in "${installed[@]}"; do
  v=${entry%%:*}
  python=${entry#*:}
  echo "== abi3 wheel on Python $v ($python)"
  log=$(mktemp)
  if (
    set -euo pipefail
    use_venv "$python" "$v"
    "$PYBUF_VENV/bin/python" -c 'import mypy' 2>/dev/null \
      || "$PYBUF_VENV/bin/python" -m pip install --quiet mypy \
      || echo "note: mypy could not be installed; the type-check test will be skipped"
    "$PYBUF_VENV/bin/python" -m pip uninstall --quiet --yes pybuf-testmod >/dev/null 2>&1 || true
    "$PYBUF_VENV/bin/python" -m pip install --quiet --no-deps "$wheel"
    cd python
    unset PYTHONPATH
    "$PYBUF_VENV/bin/python" -c '
import sys, pybuf_testmod.pybuf_testmod as m
assert m.__file__.endswith(".abi3.so"), f"not the abi3 build: {m.__file__}"
print(f"   imports {m.__file__} on Python {sys.version.split()[0]}")'
    "$PYBUF_VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
  ) 2>&1 | tee "$log"; then
    counts=$(grep -E '^[0-9]+ (passed|failed)|^(=+ )?[0-9]+ passed' "$log" | tail -1 | tr -d '=')
    summary+=("$v: ${counts:-passed}")
  else
    counts=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -1 | tr -d '=')
    summary+=("$v: FAILED ${counts}")
    failed=1
  fi
  rm -f "$log"
done

echo "== pytest summary, one abi3 wheel ($(basename "$wheel"))"
for line in "${summary[@]}"; do echo "   Python $line"; done
exit $failed
