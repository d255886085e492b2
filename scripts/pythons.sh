# Finding the CPython interpreters the scripts test with; sourced by them (defines functions
# only).

# find_python X.Y: prints the path of CPython X.Y (pyenv's first, then PATH), or fails.
find_python() {
  local v=$1 candidate
  for candidate in "$HOME"/.pyenv/versions/"$v".*/bin/python"$v"; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  command -v "python$v" 2>/dev/null || return 1
}

# newest_python: prints "X.Y PATH" for the newest installed CPython 3.12+ (the versions with
# PEP 688 and an exact attached check under the stable ABI), or fails when there is none.
newest_python() {
  local v p
  for v in 3.13 3.12; do
    p=$(find_python "$v") && { echo "$v $p"; return 0; }
  done
  return 1
}
