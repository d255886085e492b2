//! Callgrind client requests (the protocol of `valgrind/valgrind.h` and `callgrind.h`, on
//! x86-64) and reading back the profile dumps they trigger.
//!
//! A client request is a no-op instruction sequence that Valgrind recognizes: natively it
//! leaves every register as it was and the request returns its default value, so the same
//! binary runs with and without Valgrind.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

/// `VG_USERREQ_TOOL_BASE('C', 'T')`: callgrind's request numbers start here.
const CALLGRIND_BASE: usize = ((b'C' as usize) << 24) | ((b'T' as usize) << 16);
const ZERO_STATS: usize = CALLGRIND_BASE + 1;
const DUMP_STATS_AT: usize = CALLGRIND_BASE + 3;
const START_INSTRUMENTATION: usize = CALLGRIND_BASE + 4;
/// Valgrind core's `RUNNING_ON_VALGRIND` request (returns the number of Valgrinds, 0 natively).
const RUNNING_ON_VALGRIND: usize = 0x1001;

/// Issues client request `request` with `args`; returns Valgrind's answer, or `default` when
/// the program runs natively.
#[cfg(target_arch = "x86_64")]
fn client_request(default: usize, request: usize, args: [usize; 5]) -> usize {
    let block: [usize; 6] = [request, args[0], args[1], args[2], args[3], args[4]];
    let result: usize;
    // SAFETY: the four rotations of `rdi` add up to 128 bits (it ends unchanged) and
    // `xchg rbx, rbx` swaps a register with itself, so natively the sequence changes only the
    // flags (not declared preserved) and leaves `rdx` = `default`. Under Valgrind it is the
    // client-request marker: Valgrind reads the six words at `rax` (a live local array; the
    // asm is not `nomem`, so the array is written to memory before it) and writes its answer
    // to `rdx`. The requests used here only read the block and, for `DUMP_STATS_AT`, the
    // NUL-terminated string `args[0]` points to (a `&CStr` that outlives the call).
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") block.as_ptr(),
            inout("rdx") default => result,
            options(nostack),
        );
    }
    result
}

/// Other architectures: no client requests, so the harness sees "not under Valgrind" and
/// only runs its smoke pass.
#[cfg(not(target_arch = "x86_64"))]
fn client_request(default: usize, _request: usize, _args: [usize; 5]) -> usize {
    default
}

/// Whether the program runs under Valgrind (any tool).
pub fn running_on_valgrind() -> bool {
    client_request(0, RUNNING_ON_VALGRIND, [0; 5]) != 0
}

/// Turns instrumentation on (the script starts Valgrind with `--instr-atstart=no`, so
/// interpreter start-up and numpy's import run fast and uncounted).
pub fn start_instrumentation() {
    client_request(0, START_INSTRUMENTATION, [0; 5]);
}

/// Zeroes the event counters: counting starts here.
pub fn zero_stats() {
    client_request(0, ZERO_STATS, [0; 5]);
}

/// Writes the counters since the last zeroing or dump to a new dump file whose `desc:`
/// line names `trigger`, then zeroes them.
pub fn dump_stats_at(trigger: &CStr) {
    client_request(0, DUMP_STATS_AT, [trigger.as_ptr() as usize, 0, 0, 0, 0]);
}

/// The dump files of one callgrind run: `--callgrind-out-file=BASE` writes the `k`-th dump
/// to `BASE.k`.
pub struct Dumps {
    base: PathBuf,
    taken: usize,
}

impl Dumps {
    pub fn new(base: PathBuf) -> Dumps {
        Dumps { base, taken: 0 }
    }

    /// Dumps the counters under `trigger` and returns the instructions counted since the
    /// last [`zero_stats`]. Callgrind writes the file before the request returns.
    pub fn take(&mut self, trigger: &CStr) -> Result<u64, String> {
        dump_stats_at(trigger);
        self.taken += 1;
        let path = PathBuf::from(format!("{}.{}", self.base.display(), self.taken));
        read_total(&path, trigger.to_str().expect("ASCII trigger"))
    }
}

/// The total `Ir` of dump file `path`, after checking that it is the dump for `trigger`.
fn read_total(path: &Path, trigger: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read callgrind dump {}: {e}", path.display()))?;
    let desc = format!("desc: Trigger: Client Request: {trigger}");
    if !text.lines().any(|l| l == desc) {
        return Err(format!(
            "{} is not the dump for {trigger:?} (expected the line {desc:?})",
            path.display()
        ));
    }
    // `totals:` (or, in older formats, `summary:`) holds one number per event; the run
    // collects only `Ir`.
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("summary:")))
        .ok_or_else(|| format!("no totals: line in {}", path.display()))?;
    let first = total.split_whitespace().next().unwrap_or("");
    first
        .parse()
        .map_err(|e| format!("bad totals {first:?} in {}: {e}", path.display()))
}
