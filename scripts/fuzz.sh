#!/usr/bin/env bash
# Runs a cargo-fuzz target (fuzz/) for a number of seconds (default 60): `format_parse` (the
# format parser), or `layout_validate` (layout validation) with FUZZ_TARGET=layout_validate.
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]
#
# cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 enables
# them. Install cargo-fuzz with `cargo install cargo-fuzz` if it is missing. Crashes land in
# fuzz/artifacts/format_parse/; the growing corpus in fuzz/corpus/format_parse/ (seeded
# from fuzz/seeds/). Each input has a time budget (FUZZ_TIMEOUT seconds, default 10; libFuzzer's
# -timeout): an input that takes longer, such as a format whose matching is exponential, is
# reported as a crash (a "timeout-" artifact).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
shift || true
# pybuf links libpython through PyO3: the build needs PYO3_PYTHON, the run LD_LIBRARY_PATH.
# shellcheck source=/dev/null
. "$root/scripts/env.sh"
cd "$root/fuzz"
target=${FUZZ_TARGET:-format_parse}
mkdir -p "corpus/$target"
if [ "$target" = format_parse ]; then
  RUSTC_BOOTSTRAP=1 exec cargo fuzz run format_parse corpus/format_parse seeds -- \
      -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -dict="$root/fuzz/format.dict" \
      -max_len=256 "$@"
fi
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" "$@"
