//! DLPack export of `pybuf.ExportedBuffer`, with numpy as the consumer and the capsules'
//! tensors read back field by field: memory shared with the Rust data, versioned and legacy
//! capsules, read-only exports, every layout, `copy=True`, errors, and the deleter run on
//! other threads, without the interpreter, after the Python object is gone.

mod common;

use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{eval, namespace, run};
use ndarray::{s, Array0, Array1, Array2, Axis};
use pybuf::dlpack::{
    DLDataTypeCode, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned, FLAG_IS_COPIED,
    FLAG_READ_ONLY, LEGACY_CAPSULE_NAME, USED_LEGACY_CAPSULE_NAME, USED_VERSIONED_CAPSULE_NAME,
    VERSIONED_CAPSULE_NAME,
};
use pybuf::export::{self, ExportSource, Exported};
use pybuf::Error;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyDict};
use pyo3::{ffi, IntoPyObjectExt};

fn refcount(obj: &Bound<'_, PyAny>) -> isize {
    // SAFETY: `obj` is a live object and we are attached.
    unsafe { ffi::Py_REFCNT(obj.as_ptr()) }
}

/// `x.__dlpack__(**kwargs)` with `kwargs` given as Python source (`"max_version=(1, 0)"`).
/// (`x` is passed in a temporary locals dict, so no reference to it outlives the call.)
fn dlpack<'py>(
    g: &Bound<'py, PyDict>,
    x: &Bound<'py, PyAny>,
    kwargs: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let locals = PyDict::new(g.py());
    locals.set_item("_x", x).unwrap();
    let code = std::ffi::CString::new(format!("_x.__dlpack__({kwargs})")).unwrap();
    g.py().eval(&code, Some(g), Some(&locals))
}

/// What a capsule's tensor says, copied out.
#[derive(Debug, PartialEq)]
struct Described {
    version: Option<(u32, u32)>,
    flags: u64,
    data: usize,
    device: (i32, i32),
    dtype: (u8, u8, u16),
    shape: Vec<i64>,
    strides: Vec<i64>,
    byte_offset: u64,
}

/// Reads the tensor of an unconsumed capsule.
fn describe(capsule: &Bound<'_, PyAny>) -> Described {
    let capsule = capsule.cast::<PyCapsule>().unwrap();
    if let Ok(ptr) = capsule.pointer_checked(Some(VERSIONED_CAPSULE_NAME)) {
        let managed = ptr.as_ptr().cast::<DLManagedTensorVersioned>();
        // SAFETY: an unconsumed `dltensor_versioned` capsule holds a live tensor until the
        // capsule is destroyed, which cannot happen while we borrow it.
        let m = unsafe { &*managed };
        assert!(m.deleter.is_some() && !m.manager_ctx.is_null());
        let mut d = read_tensor(&m.dl_tensor);
        d.version = Some((m.version.major, m.version.minor));
        d.flags = m.flags;
        d
    } else {
        let ptr = capsule.pointer_checked(Some(LEGACY_CAPSULE_NAME)).unwrap();
        // SAFETY: as above, for a `dltensor` capsule.
        let m = unsafe { &*ptr.as_ptr().cast::<DLManagedTensor>() };
        assert!(m.deleter.is_some() && !m.manager_ctx.is_null());
        read_tensor(&m.dl_tensor)
    }
}

fn read_tensor(t: &pybuf::dlpack::DLTensor) -> Described {
    let ndim = t.ndim as usize;
    let (shape, strides) = if ndim == 0 {
        assert!(t.shape.is_null() && t.strides.is_null());
        (vec![], vec![])
    } else {
        // SAFETY: a producer's tensor has `ndim` shape and stride entries.
        unsafe {
            (
                std::slice::from_raw_parts(t.shape, ndim).to_vec(),
                std::slice::from_raw_parts(t.strides, ndim).to_vec(),
            )
        }
    };
    Described {
        version: None,
        flags: 0,
        data: t.data as usize,
        device: (t.device.device_type, t.device.device_id),
        dtype: (t.dtype.code, t.dtype.bits, t.dtype.lanes),
        shape,
        strides,
        byte_offset: t.byte_offset,
    }
}

/// Takes ownership of a capsule's tensor as a consumer does (renaming the capsule), and
/// returns its deleter call as a `Send` closure.
fn consume(capsule: &Bound<'_, PyAny>) -> impl FnOnce() + Send {
    let capsule = capsule.cast::<PyCapsule>().unwrap();
    struct Deleter(Box<dyn FnOnce() + Send>);
    let deleter = if let Ok(ptr) = capsule.pointer_checked(Some(VERSIONED_CAPSULE_NAME)) {
        let managed = ptr.as_ptr().cast::<DLManagedTensorVersioned>();
        // SAFETY: renaming a live capsule to a static name, attached.
        assert_eq!(
            unsafe {
                ffi::PyCapsule_SetName(capsule.as_ptr(), USED_VERSIONED_CAPSULE_NAME.as_ptr())
            },
            0
        );
        // SAFETY: the tensor is live; we read the deleter the producer stored.
        let delete = unsafe { (*managed).deleter }.unwrap();
        let managed = managed as usize;
        Deleter(Box::new(move || {
            // SAFETY: we consumed the capsule, so this is the tensor's one deleter call.
            unsafe { delete(managed as *mut DLManagedTensorVersioned) }
        }))
    } else {
        let ptr = capsule.pointer_checked(Some(LEGACY_CAPSULE_NAME)).unwrap();
        let managed = ptr.as_ptr().cast::<DLManagedTensor>();
        // SAFETY: as above.
        assert_eq!(
            unsafe { ffi::PyCapsule_SetName(capsule.as_ptr(), USED_LEGACY_CAPSULE_NAME.as_ptr()) },
            0
        );
        // SAFETY: as above.
        let delete = unsafe { (*managed).deleter }.unwrap();
        let managed = managed as usize;
        Deleter(Box::new(move || {
            // SAFETY: as above.
            unsafe { delete(managed as *mut DLManagedTensor) }
        }))
    };
    move || (deleter.0)()
}

fn iota(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

#[test]
fn numpy_shares_writable_memory_and_rust_sees_its_writes() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_vec_mut(py, iota(6)).unwrap();
        g.set_item("x", &x).unwrap();
        run(py, &g, "a = np.from_dlpack(x)");
        assert!(eval(&g, "np.shares_memory(a, x)")
            .extract::<bool>()
            .unwrap());
        assert_eq!(
            eval(&g, "a.__array_interface__['data']")
                .extract::<(usize, bool)>()
                .unwrap(),
            (x.as_ptr() as usize, false)
        );
        assert_eq!(x.view_count(), 1);
        // numpy's writes are seen by another consumer, and the other way round
        run(
            py,
            &g,
            "a[0] = 42.0\nm = memoryview(x)\nm[5] = -1.0\nm.release()",
        );
        assert_eq!(
            eval(&g, "x.tolist()").extract::<Vec<f64>>().unwrap(),
            [42.0, 1.0, 2.0, 3.0, 4.0, -1.0]
        );
        assert_eq!(
            eval(&g, "a.tolist()").extract::<Vec<f64>>().unwrap(),
            [42.0, 1.0, 2.0, 3.0, 4.0, -1.0]
        );
        assert!(matches!(
            x.try_into_inner(),
            Err(Error::ViewsAlive { count: 1 })
        ));
        run(py, &g, "del a");
        assert_eq!(x.view_count(), 0);
        assert_eq!(
            x.try_into_inner().unwrap(),
            [42.0, 1.0, 2.0, 3.0, 4.0, -1.0]
        );
    });
}

#[test]
fn versioned_capsules_describe_every_layout() {
    fn check<S: ExportSource>(x: Exported<S>, g: &Bound<'_, PyDict>) {
        let py = g.py();
        let obj = x.bind(py).as_any().clone();
        g.set_item("x", &obj).unwrap();
        // numpy's reading of the same export through the buffer protocol
        let (shape, byte_strides, itemsize): (Vec<i64>, Vec<i64>, i64) = eval(
            g,
            "(lambda a: (list(a.shape), list(a.strides), a.itemsize))(np.asarray(x))",
        )
        .extract()
        .unwrap();
        for (max_version, expected_minor) in
            [("(1, 0)", 0), ("(1, 1)", 1), ("(1, 7)", 1), ("(2, 0)", 1)]
        {
            let capsule = dlpack(g, &obj, &format!("max_version={max_version}")).unwrap();
            let d = describe(&capsule);
            assert_eq!(d.version, Some((1, expected_minor)), "{max_version}");
            assert_eq!(d.flags, if x.is_writable() { 0 } else { FLAG_READ_ONLY });
            assert_eq!(d.data, x.as_ptr() as usize);
            assert_eq!(d.device, (DLDeviceType::CPU, 0));
            assert_eq!(d.byte_offset, 0);
            assert_eq!(d.shape, shape);
            let expected_strides: Vec<i64> = byte_strides.iter().map(|s| s / itemsize).collect();
            assert_eq!(d.strides, expected_strides);
            assert_eq!(x.view_count(), 1);
            // numpy's import of it: same memory, same values
            g.set_item("c", &capsule).unwrap();
            drop(capsule);
            run(py, g, "class H:\n    def __dlpack__(self, **kw): return c\n    def __dlpack_device__(self): return (1, 0)\n\
                        a = np.from_dlpack(H())\ndel c\n\
                        ok = a.tolist() == np.asarray(x).tolist() and a.strides == np.asarray(x).strides\n\
                        same = a.__array_interface__['data'][0] == np.asarray(x).__array_interface__['data'][0]\n\
                        ro = not a.flags.writeable\n");
            assert!(eval(g, "ok and same").extract::<bool>().unwrap());
            assert_eq!(eval(g, "ro").extract::<bool>().unwrap(), !x.is_writable());
            run(py, g, "del a");
            assert_eq!(x.view_count(), 0);
        }
        assert!(x.try_into_inner().is_ok());
    }
    Python::attach(|py| {
        let g = namespace(py);
        let a = Array2::from_shape_vec((3, 4), iota(12)).unwrap();
        check(export::from_array(py, a.clone()).unwrap(), &g);
        check(export::from_array_mut(py, a.clone()).unwrap(), &g);
        check(
            export::from_array(py, a.clone().reversed_axes()).unwrap(),
            &g,
        ); // F order
        let mut negative = a.clone();
        negative.invert_axis(Axis(0));
        negative.invert_axis(Axis(1));
        check(export::from_array_mut(py, negative).unwrap(), &g);
        check(
            export::from_array(py, a.clone().slice_move(s![..;2, 1..;2])).unwrap(),
            &g,
        );
        check(
            export::from_array(py, Array0::from_elem((), 2.5f32)).unwrap(),
            &g,
        );
        check(
            export::from_array_mut(py, Array2::<i16>::zeros((0, 3))).unwrap(),
            &g,
        );
        check(
            export::from_array(py, Array1::from(vec![true, false, true])).unwrap(),
            &g,
        );
        check(
            export::from_vec(py, vec![num_complex::Complex::new(1.0f32, 2.0)]).unwrap(),
            &g,
        );
        check(
            export::from_vec(py, vec![half::f16::from_f32(1.5)]).unwrap(),
            &g,
        );
        // sub-array items become trailing axes, as in numpy's reading of the buffer
        check(
            export::from_vec(py, vec![[1u32, 2, 3], [4, 5, 6]]).unwrap(),
            &g,
        );
        check(
            export::from_vec_mut(py, vec![[[1i8, 2], [3, 4]]; 3]).unwrap(),
            &g,
        );
    });
}

#[test]
fn dtypes_follow_dlpack_h() {
    Python::attach(|py| {
        let g = namespace(py);
        let mut seen = Vec::new();
        macro_rules! dtype_of {
            ($($v:expr),*) => {$({
                let x = export::from_vec(py, vec![$v]).unwrap();
                let c = dlpack(&g, x.bind(py).as_any(), "max_version=(1, 0)").unwrap();
                seen.push(describe(&c).dtype);
            })*};
        }
        dtype_of!(
            true,
            1i8,
            1u8,
            1i16,
            1u16,
            1i32,
            1u32,
            1i64,
            1u64,
            half::f16::ONE,
            1f32,
            1f64,
            num_complex::Complex::new(1f32, 0.0),
            num_complex::Complex::new(1f64, 0.0),
            half::bf16::ONE
        );
        use DLDataTypeCode as C;
        assert_eq!(
            seen,
            [
                (C::BOOL, 8, 1),
                (C::INT, 8, 1),
                (C::UINT, 8, 1),
                (C::INT, 16, 1),
                (C::UINT, 16, 1),
                (C::INT, 32, 1),
                (C::UINT, 32, 1),
                (C::INT, 64, 1),
                (C::UINT, 64, 1),
                (C::FLOAT, 16, 1),
                (C::FLOAT, 32, 1),
                (C::FLOAT, 64, 1),
                (C::COMPLEX, 64, 1),
                (C::COMPLEX, 128, 1),
                (C::BFLOAT, 16, 1),
            ]
        );
        // numpy agrees on each: its import of the capsule has the buffer's dtype
        for v in [
            "np.array([1, 0], '?')",
            "np.arange(3, dtype='u2')",
            "np.arange(3, dtype='c8')",
        ] {
            let arr = eval(&g, v);
            g.set_item("x", pybuf_copy(py, &arr)).unwrap();
            assert!(eval(&g, "np.from_dlpack(x).dtype == np.asarray(x).dtype")
                .extract::<bool>()
                .unwrap());
        }
    });
}

/// A writable export of a numpy array's values (its dtype must be one of these).
fn pybuf_copy<'py>(py: Python<'py>, arr: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    let any = pybuf::AnyBuffer::get(arr).unwrap();
    match any.element_kind() {
        pybuf::ElementKind::Bool => export::from_vec_mut(
            py,
            any.typed::<bool, ndarray::Ix1>().unwrap().to_vec().unwrap(),
        )
        .unwrap()
        .into_bound_py_any(py)
        .unwrap(),
        pybuf::ElementKind::U16 => export::from_vec_mut(
            py,
            any.typed::<u16, ndarray::Ix1>().unwrap().to_vec().unwrap(),
        )
        .unwrap()
        .into_bound_py_any(py)
        .unwrap(),
        pybuf::ElementKind::ComplexF32 => export::from_vec_mut(
            py,
            any.typed::<num_complex::Complex<f32>, ndarray::Ix1>()
                .unwrap()
                .to_vec()
                .unwrap(),
        )
        .unwrap()
        .into_bound_py_any(py)
        .unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn legacy_capsules_for_writable_memory_only() {
    Python::attach(|py| {
        let g = namespace(py);
        let w = export::from_vec_mut(py, iota(3)).unwrap();
        let capsule = dlpack(&g, w.bind(py).as_any(), "").unwrap();
        assert!(capsule
            .cast::<PyCapsule>()
            .unwrap()
            .is_valid_checked(Some(LEGACY_CAPSULE_NAME)));
        let d = describe(&capsule);
        assert_eq!(
            (d.version, d.data, d.shape, d.strides),
            (None, w.as_ptr() as usize, vec![3], vec![1])
        );
        drop(capsule);
        for kwargs in ["", "max_version=None", "max_version=(0, 8)"] {
            let capsule = dlpack(&g, w.bind(py).as_any(), kwargs).unwrap();
            assert!(capsule
                .cast::<PyCapsule>()
                .unwrap()
                .is_valid_checked(Some(LEGACY_CAPSULE_NAME)));
        }
        assert_eq!(w.view_count(), 0);

        let r = export::from_vec(py, iota(3)).unwrap();
        let err = dlpack(&g, r.bind(py).as_any(), "max_version=(0, 8)").unwrap_err();
        assert!(err.is_instance_of::<pyo3::exceptions::PyBufferError>(py));
        assert_eq!(
            err.value(py).to_string(),
            Error::DLPackReadOnly {
                max_version: Some((0, 8))
            }
            .to_string()
        );
        assert_eq!(r.view_count(), 0);
    });
}

#[test]
fn unconsumed_capsules_delete_their_tensor() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_vec(py, iota(4)).unwrap();
        let obj = x.bind(py).as_any().clone();
        let before = refcount(&obj);
        let capsules: Vec<_> = (0..10)
            .map(|_| dlpack(&g, &obj, "max_version=(1, 0)").unwrap())
            .collect();
        assert_eq!(x.view_count(), 10);
        assert!(x.try_into_inner().is_err());
        // the capsules keep the memory, not the Python object
        assert_eq!(refcount(&obj), before);
        drop(capsules);
        assert_eq!(x.view_count(), 0);
        assert!(x.try_into_inner().is_ok());
    });
}

#[test]
fn deleter_runs_on_plain_threads_without_the_interpreter() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_vec_mut(py, iota(8)).unwrap();
        let obj = x.bind(py).as_any().clone();
        let before = refcount(&obj);
        let versioned = dlpack(&g, &obj, "max_version=(1, 0)").unwrap();
        let legacy = dlpack(&g, &obj, "").unwrap();
        let (delete_v, delete_l) = (consume(&versioned), consume(&legacy));
        drop((versioned, legacy)); // renamed: the capsules leave the tensors alone
        assert_eq!(x.view_count(), 2);
        // This thread stays attached (holds the interpreter) while another thread deletes:
        // a deleter that waited for the interpreter would deadlock here.
        std::thread::spawn(delete_v).join().unwrap();
        assert_eq!(x.view_count(), 1);
        // ... and from a thread spawned while this one is detached
        py.detach(|| std::thread::spawn(delete_l).join().unwrap());
        assert_eq!(x.view_count(), 0);
        assert_eq!(refcount(&obj), before);
        assert_eq!(x.try_into_inner().unwrap(), iota(8));
    });
}

#[test]
fn deleters_race_from_many_threads() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 250;
    Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_vec_mut(py, iota(16)).unwrap();
        let obj = x.bind(py).as_any().clone();
        let batches: Vec<Vec<_>> = (0..THREADS)
            .map(|i| {
                (0..PER_THREAD)
                    .map(|_| {
                        let kwargs = if i % 2 == 0 { "max_version=(1, 0)" } else { "" };
                        let c = dlpack(&g, &obj, kwargs).unwrap();
                        consume(&c)
                    })
                    .collect()
            })
            .collect();
        assert_eq!(x.view_count(), THREADS * PER_THREAD);
        let workers: Vec<_> = batches
            .into_iter()
            .map(|batch| std::thread::spawn(move || batch.into_iter().for_each(|d| d())))
            .collect();
        // meanwhile this thread keeps exporting and counting, attached
        let mut rounds = 0;
        while !workers.iter().all(|w| w.is_finished()) {
            let c = dlpack(&g, &obj, "max_version=(1, 0)").unwrap();
            drop(c);
            let _ = x.view_count();
            rounds += 1;
        }
        workers.into_iter().for_each(|w| w.join().unwrap());
        println!("rounds while deleting: {rounds}");
        assert_eq!(x.view_count(), 0);
        assert!(x.try_into_inner().is_ok());
    });
}

#[cfg(feature = "bytes")]
#[test]
fn deleter_after_the_python_object_is_gone_frees_the_data_on_its_thread() {
    struct Owner(Vec<u8>, Arc<AtomicUsize>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            // which thread freed it: 1 the test thread, 2 the deleting thread
            let id = if std::thread::current().name() == Some("deleter") {
                2
            } else {
                1
            };
            self.1.store(id, Ordering::SeqCst);
        }
    }
    let freed = Arc::new(AtomicUsize::new(0));
    let delete = Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_bytes(
            py,
            bytes::Bytes::from_owner(Owner(b"abcd".to_vec(), freed.clone())),
        )
        .unwrap();
        let capsule = dlpack(&g, x.bind(py).as_any(), "max_version=(1, 0)").unwrap();
        let d = describe(&capsule);
        assert_eq!(d.flags, FLAG_READ_ONLY);
        assert_eq!(d.dtype, (DLDataTypeCode::UINT, 8, 1));
        let delete = consume(&capsule);
        drop(capsule);
        drop(x); // the last reference: the Python object is freed now
        assert_eq!(
            freed.load(Ordering::SeqCst),
            0,
            "the tensor still holds the data"
        );
        delete
    });
    std::thread::Builder::new()
        .name("deleter".into())
        .spawn(delete)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        freed.load(Ordering::SeqCst),
        2,
        "freed by the deleter, on its thread"
    );
}

#[test]
fn numpy_lets_go_when_its_array_is_garbage_collected() {
    Python::attach(|py| {
        let g = namespace(py);
        let x =
            export::from_array_mut(py, Array2::from_shape_vec((2, 2), iota(4)).unwrap()).unwrap();
        g.set_item("x", &x).unwrap();
        let before = refcount(x.bind(py).as_any());
        // a reference cycle: only the cycle collector frees the array
        run(
            py,
            &g,
            "import gc\ngc.disable()\ncycle = [np.from_dlpack(x)]\ncycle.append(cycle)\ndel cycle",
        );
        assert_eq!(x.view_count(), 1);
        run(py, &g, "gc.collect()\ngc.enable()");
        assert_eq!(x.view_count(), 0);
        assert_eq!(refcount(x.bind(py).as_any()), before);
        assert!(x.try_into_inner().is_ok());
    });
}

#[test]
fn copies_belong_to_the_consumer() {
    Python::attach(|py| {
        let g = namespace(py);
        let mut a = Array2::from_shape_vec((2, 3), iota(6)).unwrap();
        a.invert_axis(Axis(1));
        let x = export::from_array(py, a).unwrap();
        g.set_item("x", &x).unwrap();
        for kwargs in ["max_version=(1, 0), copy=True", "copy=True"] {
            let capsule = dlpack(&g, x.bind(py).as_any(), kwargs).unwrap();
            let d = describe(&capsule);
            if d.version.is_some() {
                assert_eq!(
                    d.flags, FLAG_IS_COPIED,
                    "a copy is writable and marked copied"
                );
            }
            assert_ne!(d.data, x.as_ptr() as usize);
            assert_eq!((d.shape, d.strides), (vec![2, 3], vec![3, 1]));
            assert_eq!(x.view_count(), 0, "a copy keeps no view");
        }
        run(py, &g, "a = np.from_dlpack(x, copy=True)\nok = a.tolist() == np.asarray(x).tolist() and not np.shares_memory(a, x) and a.flags.writeable");
        assert!(eval(&g, "ok").extract::<bool>().unwrap());
        assert!(x.try_into_inner().is_ok());
    });
}

#[test]
fn refusals_are_specific_errors() {
    #[derive(Clone, Copy, pybuf::Element)]
    #[repr(C)]
    struct Point {
        x: f64,
        y: f64,
    }
    Python::attach(|py| {
        let g = namespace(py);
        let records = export::from_vec_mut(py, vec![Point { x: 1.0, y: 2.0 }]).unwrap();
        let err = dlpack(&g, records.bind(py).as_any(), "max_version=(1, 0)").unwrap_err();
        assert!(err.is_instance_of::<pyo3::exceptions::PyBufferError>(py));
        let message = err.value(py).to_string();
        assert!(
            message.contains("format 'T{<d:x:<d:y:}'")
                && message.contains("no data type for records"),
            "{message}"
        );

        let big = export::from_vec_mut(py, vec![pybuf::be::F64::new(1.0)]).unwrap();
        let message = dlpack(&g, big.bind(py).as_any(), "max_version=(1, 0)")
            .unwrap_err()
            .value(py)
            .to_string();
        assert!(
            message.contains("'>d'") && message.contains("big-endian"),
            "{message}"
        );

        let x = export::from_vec_mut(py, iota(2)).unwrap();
        let obj = x.bind(py).as_any();
        let err = dlpack(&g, obj, "dl_device=(2, 0)").unwrap_err();
        assert!(err.is_instance_of::<pyo3::exceptions::PyBufferError>(py));
        assert_eq!(
            err.value(py).to_string(),
            Error::DLPackDevice {
                device_type: 2,
                device_id: 0
            }
            .to_string()
        );
        let err = dlpack(&g, obj, "stream=0").unwrap_err();
        assert!(err.is_instance_of::<pyo3::exceptions::PyValueError>(py));
        assert_eq!(
            err.value(py).to_string(),
            Error::DLPackStream { stream: "0".into() }.to_string()
        );
        assert!(dlpack(&g, obj, "stream=None, dl_device=(1, 0), copy=False").is_ok());

        // while Rust reads a writable export, no consumer may get a writable tensor
        x.with_inner(|v| {
            assert_eq!(v, [0.0, 1.0]);
            let err = dlpack(&g, obj, "max_version=(1, 0)").unwrap_err();
            assert!(err.value(py).to_string().contains("borrow"), "{err}");
            // a copy only reads
            assert!(dlpack(&g, obj, "max_version=(1, 0), copy=True").is_ok());
        })
        .unwrap();

        x.try_into_inner().unwrap();
        let err = dlpack(&g, obj, "max_version=(1, 0)").unwrap_err();
        assert_eq!(err.value(py).to_string(), Error::ExportTaken.to_string());
        let err = dlpack(&g, obj, "max_version=(1, 0), copy=True").unwrap_err();
        assert_eq!(err.value(py).to_string(), Error::ExportTaken.to_string());
        assert_eq!(records.view_count() + big.view_count() + x.view_count(), 0);
    });
}

#[test]
fn invalid_values_written_through_dlpack_are_caught() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = export::from_vec_mut(py, vec![true, false]).unwrap();
        g.set_item("x", &x).unwrap();
        run(
            py,
            &g,
            "a = np.from_dlpack(x)\na.view(np.uint8)[1] = 2\ndel a",
        );
        assert!(matches!(
            x.try_into_inner(),
            Err(Error::InvalidValue { position: 1, .. })
        ));
    });
}

#[test]
fn capsule_names_are_the_spec_names() {
    let names: [&CStr; 4] = [
        VERSIONED_CAPSULE_NAME,
        USED_VERSIONED_CAPSULE_NAME,
        LEGACY_CAPSULE_NAME,
        USED_LEGACY_CAPSULE_NAME,
    ];
    assert_eq!(
        names.map(|n| n.to_str().unwrap()),
        [
            "dltensor_versioned",
            "used_dltensor_versioned",
            "dltensor",
            "used_dltensor"
        ]
    );
}
