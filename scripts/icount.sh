#!/usr/bin/env bash
# Instruction counts per operation (benches/icount): pybuf against raw CPython, PyO3,
# rust-numpy and an ndarray view, every variant in one process under callgrind.
#
#   bash scripts/icount.sh                # build (bench profile), run, print the table
#   bash scripts/icount.sh --update       # the same, and rewrite the table in BENCHMARKS.md
#   bash scripts/icount.sh --n 50000      # more iterations per variant (default 20,000)
#
# The program zeroes callgrind's counters before each variant's loop and dumps them after it
# (client requests), so only the loop is counted; the dumps stay in target/icount/ (one file
# per variant, listed in target/icount/dumps.txt: `callgrind_annotate --inclusive=yes
# target/icount/callgrind.out.K` shows where variant K's instructions go; dump 1 is the empty
# loop). The table is also saved as target/icount/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

update=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --update) update=1 ;;
    --n) args+=(--n "$2"); shift ;;
    *) echo "usage: $0 [--update] [--n ITERATIONS]" >&2; exit 2 ;;
  esac
  shift
done

bin=$(cargo bench --bench icount --no-run --message-format=json 2>/dev/null |
  "$PYO3_PYTHON" -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "icount" and msg.get("executable"):
        print(msg["executable"])')
[ -x "$bin" ] || { echo "icount: build failed (run: cargo bench --bench icount --no-run)" >&2; exit 1; }

out=target/icount
rm -rf "$out"
mkdir -p "$out"
# One OpenBLAS thread (numpy's import would otherwise start idle worker threads); a fixed
# hash seed, so that the Python objects are laid out the same in every run.
export PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1 ICOUNT_CALLGRIND_OUT="$PWD/$out/callgrind.out"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$ICOUNT_CALLGRIND_OUT" \
  --log-file="$out/valgrind.log" "$bin" "${args[@]}" >"$out/table.md" \
  2> >(tee "$out/dumps.txt" >&2)

lock_version() { awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock; }
{
  cat "$out/table.md"
  echo "PyO3 $(lock_version pyo3), rust-numpy $(lock_version numpy), valgrind $(valgrind --version | sed 's/valgrind-//'), commit $(git rev-parse --short HEAD) (src/ last changed in $(git log -1 --format=%h -- src))$(git diff --quiet HEAD -- src || echo ', with uncommitted changes in src/')."
} >"$out/table.tmp" && mv "$out/table.tmp" "$out/table.md"
cat "$out/table.md"

if [ "$update" = 1 ]; then
  "$PYO3_PYTHON" - "$out/table.md" BENCHMARKS.md <<'EOF'
import sys
table, path = open(sys.argv[1]).read().strip(), sys.argv[2]
text = open(path).read()
start, end = "<!-- icount:start -->", "<!-- icount:end -->"
if start not in text or end not in text:
    sys.exit(f"icount: {path} has no {start} ... {end} markers")
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(f"{head}{start}\n{table}\n{end}{tail}")
print(f"icount: table written to {path}", file=sys.stderr)
EOF
fi
