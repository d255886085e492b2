//! Exposes PyO3's interpreter cfgs (`Py_LIMITED_API`, `Py_3_12`, `Py_GIL_DISABLED`, ...) to
//! pybuf's own code, so that `release.rs` and `source/names.rs` can keep their full-API fast
//! paths and fall back to limited-API calls when the user's pyo3 builds for the stable ABI
//! (`abi3-py311` or later).
//!
//! A stable-ABI build below 3.11 (`abi3-py39`, `abi3-py310`) stops here with one message: the
//! buffer protocol (`Py_buffer`, `PyObject_GetBuffer`, `PyBuffer_Release`) joined the limited
//! API in CPython 3.11, so pyo3 has none of it at a lower abi3 level, and compiling pybuf
//! would only produce dozens of "cannot find `Py_buffer`" errors.
fn main() {
    let config = pyo3_build_config::get();
    let outputs = config.build_script_outputs();
    let limited = outputs
        .iter()
        .any(|o| o == "cargo:rustc-cfg=Py_LIMITED_API");
    let has_311 = outputs.iter().any(|o| o == "cargo:rustc-cfg=Py_3_11");
    if limited && !has_311 {
        println!(
            "cargo::error=pybuf needs CPython's buffer protocol, which is in the limited API \
             (stable ABI, abi3) only from CPython 3.11 on; this build targets abi3 for Python \
             {}. Enable pyo3's `abi3-py311` feature (or a later abi3 level) instead of the \
             lower one, or build without abi3.",
            config.target_abi().version()
        );
        return;
    }
    pyo3_build_config::use_pyo3_cfgs();
}
