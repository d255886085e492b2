#!/usr/bin/env bash
# Builds the test extension module (python/, `pybuf_testmod`) and runs its pytest suite
# (python/tests/) on every CPython version installed here that PyO3 0.30 supports (3.9+).
#
# Per version X.Y: a virtualenv `.venv-pyX.Y` (numpy, pytest, maturin, typing_extensions,
# mypy; made by scripts/env.sh), a cargo target folder `target/pytest/pyX.Y` (so switching
# versions does not rebuild everything), `maturin develop` into the venv, then pytest.
# Versions that are not installed, or older than PyO3 supports, are skipped with a note.
#
#   PYBUF_PYTEST_VERSIONS="3.11 3.12"  restricts the versions (default: 3.9 .. 3.13)
#   extra arguments are passed to pytest (e.g. `-k norm -x`)
#   PYBUF_DISCARD_TARGETS=1  deletes each version's target folder after its run (CI: disk)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

versions=${PYBUF_PYTEST_VERSIONS:-"3.9 3.10 3.11 3.12 3.13"}
min_minor=9   # PyO3 0.30 supports CPython 3.9 and newer

. scripts/pythons.sh

summary=()
failed=0
for v in $versions; do
  if [ "${v#3.}" -lt "$min_minor" ]; then
    echo "== Python $v: skipped (PyO3 0.30 supports CPython 3.$min_minor and newer)"
    summary+=("$v: skipped (unsupported by PyO3 0.30)")
    continue
  fi
  if ! python=$(find_python "$v"); then
    echo "== Python $v: skipped (not installed)"
    summary+=("$v: skipped (not installed)")
    continue
  fi
  echo "== Python $v ($python)"
  log=$(mktemp)
  # A subshell per version: env.sh exports PYTHONPATH and friends for one interpreter.
  if (
    set -euo pipefail
    # Forget another interpreter's setup (.ci/run sources env.sh for the default venv first):
    # its site-packages on PYTHONPATH would make pip and imports see the wrong packages.
    unset PYTHONPATH PYO3_PYTHON
    export PYBUF_PYTHON=$python PYBUF_VENV=$root/.venv-py$v
    . scripts/env.sh
    "$PYBUF_VENV/bin/python" -c 'import mypy' 2>/dev/null \
      || "$PYBUF_VENV/bin/python" -m pip install --quiet mypy \
      || echo "note: mypy could not be installed; the type-check test will be skipped"
    export CARGO_TARGET_DIR=$root/target/pytest/py$v
    VIRTUAL_ENV=$PYBUF_VENV "$PYBUF_VENV/bin/maturin" develop --quiet \
      --manifest-path python/Cargo.toml
    cd python
    # The embedded-interpreter variables of env.sh are not wanted by a plain Python process.
    unset PYTHONPATH
    # The venv is shared with scripts/pytest-abi3.sh: make sure this version's own build is
    # the one imported, not the abi3 wheel that run installed.
    "$PYBUF_VENV/bin/python" -c '
import pybuf_testmod.pybuf_testmod as m
assert not m.__file__.endswith(".abi3.so"), f"the abi3 build is installed: {m.__file__}"'
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
  # CI (PYBUF_DISCARD_TARGETS=1) frees each version's build once its run is over.
  [ "${PYBUF_DISCARD_TARGETS:-0}" = 1 ] && rm -rf "$root/target/pytest/py$v"
done

echo "== pytest summary"
for line in "${summary[@]}"; do echo "   Python $line"; done
exit $failed
