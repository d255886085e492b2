use pyo3::prelude::*;

#[test]
fn embedded_python_sees_numpy() {
    Python::attach(|py| {
        let np = py
            .import("numpy")
            .expect("numpy importable from the embedded interpreter");
        let v: String = np.getattr("__version__").unwrap().extract().unwrap();
        assert!(!v.is_empty());
    });
}
