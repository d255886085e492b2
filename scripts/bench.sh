#!/usr/bin/env bash
# Runs the benchmark suite (benches/*.rs) with the embedded interpreter's environment, then
# turns the results into ratios (BENCHMARKS.md) and a plot (docs/bench.png).
#
#   bash scripts/bench.sh                 # all benches, short criterion runs
#   bash scripts/bench.sh acquire sum     # only these bench targets
#   BENCH_ARGS="--measurement-time 5" bash scripts/bench.sh   # longer runs (quiet machine)
#
# The machine this was written on has 2 cores shared by several developers, so the default
# runs are short (1 s warm-up, 2 s measurement) and results are reported as ratios measured
# in the same run, never as absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

all=(acquire borrow sum copy_out drop_detached per_element)
benches=("$@")
[ ${#benches[@]} -eq 0 ] && benches=("${all[@]}")
args=(--warm-up-time 1 --measurement-time 2 ${BENCH_ARGS:-})

for bench in "${benches[@]}"; do
  echo "== cargo bench --bench $bench" >&2
  case "$bench" in
    sum | copy_out)
      # These time numpy itself (a.sum(), ascontiguousarray). OPENBLAS_CORETYPE and
      # OPENBLAS_L2_SIZE, set in the environment on some processors, slow numpy down:
      # unset them for this command only.
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE cargo bench --bench "$bench" -- "${args[@]}"
      ;;
    *)
      cargo bench --bench "$bench" -- "${args[@]}"
      ;;
  esac
done

"$PYO3_PYTHON" -c 'import matplotlib' 2>/dev/null || "$PYO3_PYTHON" -m pip install --quiet matplotlib >&2
"$PYO3_PYTHON" scripts/plot_bench.py
