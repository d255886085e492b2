#!/usr/bin/env bash
# Runs integration test binaries under valgrind memcheck and summarizes the errors.
#
#   bash scripts/valgrind.sh [TEST ...]      (default: every tests/core_*.rs and tests/release*.rs)
#
# Each TEST is the name of a file in tests/ without `.rs`, optionally followed by `:` and
# arguments for the test binary separated by commas (`interchange_dlpack:--skip=jax` leaves
# out the tests whose name contains `jax`). The binaries are built in the test
# profile, then run one at a time with `--test-threads=1` under memcheck, with
# PYTHONMALLOC=malloc (so CPython's small-object allocator does not hide heap errors) and
# the suppressions in scripts/valgrind-python.supp for CPython's and numpy's own noise.
#
# The report per binary: memcheck's error count, how many of those errors have a frame of
# pybuf or of the test itself in their stack (those are ours to fix: a test reading bytes
# that pybuf left uninitialized shows up in the test's frames), and the wall time. The exit status is non-zero if
# any error with a pybuf frame was found or a test failed. Logs stay in target/valgrind/.
#
# Environment: VALGRIND_ARGS adds memcheck options; PYBUF_VALGRIND_LEAKS=1 also reports
# definite leaks (off by default: an embedded interpreter is never finalized).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

if ! command -v valgrind >/dev/null; then
  echo "valgrind not found (apt-get install valgrind)" >&2
  exit 2
fi

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in tests/core_*.rs tests/release*.rs; do
    [ -e "$f" ] && tests+=("$(basename "$f" .rs)")
  done
fi

mkdir -p target/valgrind
supp=scripts/valgrind-python.supp
leak_args=(--leak-check=no)
if [ "${PYBUF_VALGRIND_LEAKS:-0}" = 1 ]; then
  leak_args=(--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite)
fi

# Build every binary first, and learn their paths from cargo's JSON messages.
declare -A bins
build_args=()
for t in "${tests[@]}"; do build_args+=(--test "${t%%:*}"); done
while IFS=$'\t' read -r name path; do
  bins[$name]=$path
done < <(cargo test --no-run --message-format=json "${build_args[@]}" 2>/dev/null |
  "$PYO3_PYTHON" -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"], sep="\t")
')

status=0
total_start=$(date +%s)
printf '%-28s %8s %10s %8s %s\n' binary errors pybuf-frm seconds tests
for spec in "${tests[@]}"; do
  t=${spec%%:*}
  extra=()
  if [ "$spec" != "$t" ]; then IFS=, read -r -a extra <<<"${spec#*:}"; fi
  bin=${bins[$t]:-}
  if [ -z "$bin" ]; then
    echo "$t: no such test binary (build failed?)" >&2
    status=1
    continue
  fi
  log=target/valgrind/$t.log
  out=target/valgrind/$t.out
  start=$(date +%s)
  PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=0 --num-callers=40 \
    --expensive-definedness-checks=yes \
    --suppressions="$supp" --gen-suppressions=all "${leak_args[@]}" \
    --log-file="$log" ${VALGRIND_ARGS:-} "$bin" --test-threads=1 "${extra[@]}" >"$out" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  errors=$(grep -Eo 'ERROR SUMMARY: [0-9]+ errors' "$log" | tail -1 | grep -Eo '[0-9]+' | head -1)
  # An error block starts with a blank-ish "==pid== " line and runs to the next blank one;
  # count the blocks that mention a pybuf function (crate paths look like pybuf::...).
  ours=$("$PYO3_PYTHON" - "$log" "$t" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
test = re.escape(sys.argv[2])
blocks = re.split(r"\n==\d+== \n", text)
n = 0
for b in blocks:
    if re.search(r"(Invalid|uninitialised|Conditional jump|Mismatched|overlap|definitely lost)", b) \
       and re.search(r"\b(pybuf|pybuf_derive|" + test + r")::", b):
        n += 1
print(n)
PY
)
  passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$out" | tail -1)
  printf '%-28s %8s %10s %8s %s\n' "$t" "${errors:-?}" "$ours" "$secs" "${passed:-rc=$rc}"
  if [ "$ours" != 0 ] || [ "$rc" != 0 ]; then status=1; fi
done
echo "total: $(( $(date +%s) - total_start ))s; logs in target/valgrind/"
exit $status
