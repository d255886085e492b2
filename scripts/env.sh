# Source this file (`. scripts/env.sh`): it creates the local virtualenv `.venv` on first use
# (numpy, pytest, maturin; in the default venv also jax, jaxlib, Pillow and pyarrow for the
# interchange tests, see PYBUF_PEERS below) and exports what a Rust program embedding CPython
# needs to find that interpreter, its shared library and the venv's site-packages.
#
# PYBUF_PYTHON selects the base interpreter (default: python3.11 from pyenv, else python3);
# PYBUF_VENV the virtualenv folder (default: .venv at the repository root).

_pybuf_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -z "${PYBUF_PYTHON:-}" ]; then
  if [ -x "$HOME/.pyenv/versions/3.11.7/bin/python3.11" ]; then
    PYBUF_PYTHON="$HOME/.pyenv/versions/3.11.7/bin/python3.11"
  elif command -v python3.11 >/dev/null 2>&1; then
    PYBUF_PYTHON=$(command -v python3.11)
  else
    PYBUF_PYTHON=$(command -v python3)
  fi
fi
# The interchange peers (jax, jaxlib, Pillow, pyarrow) are for the embedding tests, which use
# the default venv; other venvs (per-version pytest runs) get them with PYBUF_PEERS=1.
if [ -z "${PYBUF_VENV:-}" ]; then _pybuf_peers=${PYBUF_PEERS:-1}; else _pybuf_peers=${PYBUF_PEERS:-0}; fi
PYBUF_VENV=${PYBUF_VENV:-$_pybuf_root/.venv}
_pybuf_check='import numpy, pytest'
if [ "$_pybuf_peers" = 1 ]; then _pybuf_check="$_pybuf_check, jax, PIL, pyarrow"; fi

if [ ! -x "$PYBUF_VENV/bin/python" ] || ! "$PYBUF_VENV/bin/python" -c "$_pybuf_check" 2>/dev/null; then
  echo "pybuf: setting up $PYBUF_VENV with $PYBUF_PYTHON" >&2
  "$PYBUF_PYTHON" -m venv "$PYBUF_VENV" >&2 || return 1
  "$PYBUF_VENV/bin/python" -m pip install --quiet --upgrade pip >&2 || return 1
  "$PYBUF_VENV/bin/python" -m pip install --quiet numpy pytest maturin typing_extensions >&2 || return 1
  if [ "$_pybuf_peers" = 1 ]; then
    # DLPack and array-interface peers of the interchange tests.
    "$PYBUF_VENV/bin/python" -m pip install --quiet jax jaxlib Pillow pyarrow >&2 || return 1
  fi
fi

# PyO3's build script asks this interpreter for its version and library; the embedded
# interpreter then needs the shared libpython at run time and the venv's packages on sys.path.
export PYO3_PYTHON="$PYBUF_VENV/bin/python"
_pybuf_libdir=$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
_pybuf_site=$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export LD_LIBRARY_PATH="$_pybuf_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$_pybuf_site${PYTHONPATH:+:$PYTHONPATH}"
unset _pybuf_libdir _pybuf_site _pybuf_peers _pybuf_check
