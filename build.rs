//! Exposes PyO3's interpreter cfgs (`Py_LIMITED_API`, `Py_3_12`, `Py_GIL_DISABLED`, ...) to
//! pybuf's own code, so that `release.rs` can keep its full-API fast path and fall back to
//! limited-API calls when the user's pyo3 builds for the stable ABI (`abi3-py311`).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
