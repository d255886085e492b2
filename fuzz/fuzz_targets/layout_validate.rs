//! Layout validation against an independent reference model, plus the copy engine over real
//! memory for accepted layouts (see `pybuf::fuzzing`). Any disagreement panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pybuf::fuzzing::{check_layout, Descriptor};

fuzz_target!(|data: &[u8]| {
    check_layout(&Descriptor::from_bytes(data));
});
