#!/usr/bin/env bash
# What the stable ABI costs per acquisition: the instruction-count harness (benches/icount,
# scripts/icount.sh) built for the full C API and for pyo3's abi3-py311, each embedding
# CPython 3.11 and the newest installed 3.12+, and pybuf's acquisition rows side by side.
#
#   bash scripts/icount-abi3.sh            # four callgrind runs (≈ 2 min each, plus builds)
#   bash scripts/icount-abi3.sh --update   # the same, and rewrite the abi3 table in BENCHMARKS.md
#   bash scripts/icount-abi3.sh --merge [--update]   # no runs: compare the tables already there
#
# The four tables stay in target/icount{,-py3.X,-abi3-py3.11,-abi3-py3.X}/table.md; the
# comparison is saved as target/icount-abi3.md. Without --update the main table in
# BENCHMARKS.md is left alone (the default build's run here only regenerates target/icount).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

update=0
merge_only=0
for arg in "$@"; do
  case "$arg" in
    --update) update=1 ;;
    --merge) merge_only=1 ;;
    *) echo "usage: $0 [--merge] [--update]" >&2; exit 2 ;;
  esac
done

. scripts/pythons.sh
newest="" newest_v=""
if found=$(newest_python); then
  newest_v=${found%% *} newest=${found#* }
fi

run() { [ "$merge_only" = 1 ] || env -u PYTHONPATH -u PYO3_PYTHON "$@" >/dev/null; }
say() { [ "$merge_only" = 1 ] || echo "== icount: $*" >&2; }
say "full API, Python 3.11"
run bash scripts/icount.sh
say "abi3-py311, Python 3.11"
run bash scripts/icount.sh --abi3
tables=(target/icount/table.md target/icount-abi3-py3.11/table.md)
if [ -n "$newest" ]; then
  for mode in "" --abi3; do
    say "${mode:+abi3-py311}${mode:-full API}, Python $newest_v"
    run env PYBUF_PYTHON="$newest" PYBUF_VENV="$root/.venv-py$newest_v" \
      bash scripts/icount.sh $mode
  done
  tables+=("target/icount-py$newest_v/table.md" "target/icount-abi3-py$newest_v/table.md")
fi

. scripts/env.sh
"$PYO3_PYTHON" - "$update" "${tables[@]}" <<'EOF'
import re, sys

update, paths = sys.argv[1] == "1", sys.argv[2:]

def parse(path):
    """Rows of one icount table: operation -> (raw CPython, pybuf), and its footer."""
    lines = open(path).read().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    raw, pybuf = header.index("raw CPython"), header.index("pybuf")
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        num = lambda c: None if c in ("–", "") else float(c.replace(",", ""))
        rows[cells[0]] = (num(cells[raw]), num(cells[pybuf]))
    footer = " ".join(l for l in lines if l and not l.startswith("|"))
    version = re.search(r"CPython (\d+\.\d+)\.\d+", footer).group(1)
    return rows, version, footer

tables = [parse(p) for p in paths]
pairs = [(tables[i], tables[i + 1]) for i in range(0, len(tables), 2)]
fmt = lambda x: "–" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.1f}")

head = ["operation"]
for full, _ in pairs:
    v = full[1]
    head += [f"raw {v}", f"pybuf {v}", f"pybuf {v} abi3", "abi3 − full"]
out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
for op, (raw, _) in pairs[0][0][0].items():
    if raw is None:
        continue  # rows without a raw-CPython variant: borrows and item access, no FFI path
    cells = [op]
    for full, abi3 in pairs:
        r, f = full[0].get(op, (None, None))
        _, a = abi3[0].get(op, (None, None))
        diff = None if f is None or a is None else a - f
        cells += [fmt(r), fmt(f), fmt(a), "–" if diff is None else f"{diff:+,.0f}"]
    out.append("| " + " | ".join(cells) + " |")
out.append("")
def setting(footer):
    m = re.search(r"([\d,]+) counted iterations per cell; (CPython \d+(?:\.\d+)*).*?"
                  r"(numpy \d+(?:\.\d+)*)", footer)
    return m.group(1), f"{m.group(2)} with {m.group(3)}"
iterations = setting(tables[0][2])[0]
runs = ", ".join(dict.fromkeys(setting(t[2])[1] for t in tables))
tools = re.search(r"(PyO3 .*?valgrind \d+(?:\.\d+)*)", tables[0][2]).group(1)
sources = sorted(set(re.search(r"src/ last changed in (\w+)", t[2]).group(1) for t in tables))
out.append(f"Instructions per get + drop (the loop's own 6 included), {iterations} counted "
           f"iterations per cell; each pair of columns from two builds of the same sources "
           f"(src/ as of {', '.join(sources)}): the full C API and pyo3's `abi3-py311`; {runs}; "
           f"{tools}.")
table = "\n".join(out)
open("target/icount-abi3.md", "w").write(table + "\n")
print(table)
if update:
    path = "BENCHMARKS.md"
    text = open(path).read()
    start, end = "<!-- icount-abi3:start -->", "<!-- icount-abi3:end -->"
    if start not in text or end not in text:
        sys.exit(f"icount-abi3: {path} has no {start} ... {end} markers")
    h, rest = text.split(start, 1)
    _, t = rest.split(end, 1)
    open(path, "w").write(f"{h}{start}\n{table}\n{end}{t}")
    print(f"icount-abi3: table written to {path}", file=sys.stderr)
EOF
