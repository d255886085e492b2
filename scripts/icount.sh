#!/usr/bin/env bash
# Instruction counts per operation (benches/icount): pybuf against raw CPython, PyO3,
# rust-numpy and an ndarray view, every variant in one process under callgrind.
#
#   bash scripts/icount.sh                # build (bench profile), run, print the table
#   bash scripts/icount.sh --update       # the same, and rewrite the table in BENCHMARKS.md
#   bash scripts/icount.sh --n 50000      # more iterations per variant (default 20,000)
#   bash scripts/icount.sh --abi3         # pybuf and its peers built for the stable ABI
#                                         # (pyo3's abi3-py311), in target/abi3-pyX.Y
#
# The embedded CPython is scripts/env.sh's (3.11 unless PYBUF_PYTHON and PYBUF_VENV say
# otherwise). Only the default build (full API, the default venv) writes target/icount and,
# with --update, BENCHMARKS.md's main table; an --abi3 or other-interpreter run uses its own
# target folder and writes target/icount-[abi3-]pyX.Y (scripts/icount-abi3.sh compares them).
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
abi3=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --update) update=1 ;;
    --abi3) abi3=1 ;;
    --n) args+=(--n "$2"); shift ;;
    *) echo "usage: $0 [--update] [--abi3] [--n ITERATIONS]" >&2; exit 2 ;;
  esac
  shift
done

version=$("$PYO3_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
features=()
out=target/icount
if [ "$abi3" = 1 ]; then
  features=(--features pyo3/abi3-py311)
  export CARGO_TARGET_DIR=$PWD/target/abi3-py$version
  out=target/icount-abi3-py$version
elif [ "$PYBUF_VENV" != "$PWD/.venv" ]; then
  export CARGO_TARGET_DIR=$PWD/target/embed-py$version
  out=target/icount-py$version
fi
if [ "$update" = 1 ] && [ "$out" != target/icount ]; then
  echo "icount: --update rewrites the main table, which is the default build's (full API, .venv)" >&2
  exit 2
fi

bin=$(cargo bench --bench icount --no-run "${features[@]}" --message-format=json 2>/dev/null |
  "$PYO3_PYTHON" -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "icount" and msg.get("executable"):
        print(msg["executable"])')
[ -x "$bin" ] || { echo "icount: build failed (run: cargo bench --bench icount --no-run)" >&2; exit 1; }

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
