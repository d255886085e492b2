//! DLPack as a source: numpy (versioned and legacy capsules), jax on the CPU, pyarrow, and a
//! hand-written producer (ctypes structs in a capsule) for everything a producer can get
//! wrong. Values are checked against what the libraries report (`np.asarray(x).tolist()`);
//! deleter calls and reference counts are counted by the producers.

mod common;

use common::{eval, namespace, run};
use pybuf::{AnyBuffer, Buffer0, Buffer1, Buffer2, BufferD, ElementKind, Error, Source};
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Producers for the tests: wrappers around numpy's own `__dlpack__`, and `Producer`, which
/// builds its managed tensor with ctypes and counts its deleter calls. Its capsule destructor
/// follows the specification: it calls the deleter only while the capsule has its original
/// name (not consumed).
const PRODUCERS: &str = r#"
import gc, threading

class Legacy:
    """A pre-1.0 producer: refuses keywords, hands out numpy's legacy capsule."""
    def __init__(self, a):
        self.a = a
        self.capsules = []
    def __dlpack__(self, **kw):
        if kw:
            raise TypeError("__dlpack__() takes no keyword arguments")
        c = self.a.__dlpack__()
        self.capsules.append(c)
        return c
    def __dlpack_device__(self):
        return self.a.__dlpack_device__()

class Forward:
    """Forwards every keyword to numpy (versioned capsules), records the capsules."""
    def __init__(self, a):
        self.a = a
        self.capsules = []
        self.calls = []
    def __dlpack__(self, **kw):
        self.calls.append(kw)
        c = self.a.__dlpack__(**kw)
        self.capsules.append(c)
        return c
    def __dlpack_device__(self):
        return self.a.__dlpack_device__()

class DLDevice(ctypes.Structure):
    _fields_ = [('device_type', ctypes.c_int32), ('device_id', ctypes.c_int32)]
class DLDataType(ctypes.Structure):
    _fields_ = [('code', ctypes.c_uint8), ('bits', ctypes.c_uint8), ('lanes', ctypes.c_uint16)]
class DLTensor(ctypes.Structure):
    _fields_ = [('data', ctypes.c_void_p), ('device', DLDevice), ('ndim', ctypes.c_int32),
                ('dtype', DLDataType), ('shape', ctypes.POINTER(ctypes.c_int64)),
                ('strides', ctypes.POINTER(ctypes.c_int64)), ('byte_offset', ctypes.c_uint64)]
class DLPackVersion(ctypes.Structure):
    _fields_ = [('major', ctypes.c_uint32), ('minor', ctypes.c_uint32)]
class MTV(ctypes.Structure):
    pass
DELV = ctypes.CFUNCTYPE(None, ctypes.POINTER(MTV))
MTV._fields_ = [('version', DLPackVersion), ('manager_ctx', ctypes.c_void_p), ('deleter', DELV),
                ('flags', ctypes.c_uint64), ('dl_tensor', DLTensor)]
class MT(ctypes.Structure):
    pass
DEL = ctypes.CFUNCTYPE(None, ctypes.POINTER(MT))
MT._fields_ = [('dl_tensor', DLTensor), ('manager_ctx', ctypes.c_void_p), ('deleter', DEL)]

CAPDEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
capsule_new = ctypes.pythonapi.PyCapsule_New
capsule_new.restype = ctypes.py_object
capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, CAPDEL]
capsule_name = ctypes.pythonapi.PyCapsule_GetName
capsule_name.restype = ctypes.c_char_p
capsule_name.argtypes = [ctypes.c_void_p]

class Producer:
    """A DLPack producer over the memory of numpy array `a`, with every field adjustable."""
    def __init__(self, a, versioned=True, name=None, major=1, minor=0, device=(1, 0),
                 tensor_device=None, flags=0, dtype=None, shape=None, strides=None,
                 byte_offset=0, data_delta=0, ndim=None, raise_in_dlpack=None,
                 raise_in_deleter=False, null_deleter=False):
        self.a = a
        self.versioned = versioned
        self.name = name if name is not None else (b'dltensor_versioned' if versioned else b'dltensor')
        self.major, self.minor, self.device, self.flags = major, minor, device, flags
        self.tensor_device = tensor_device or device
        codes = {'f': 2, 'i': 0, 'u': 1, 'b': 6, 'c': 5}
        self.dtype = dtype or (codes[a.dtype.kind], a.itemsize * 8, 1)
        self.shape = a.shape if shape is None else shape
        self.strides = ([s // a.itemsize for s in a.strides] if strides is None else strides)
        self.byte_offset, self.data_delta = byte_offset, data_delta
        self.ndim = len(self.shape) if ndim is None else ndim
        self.raise_in_dlpack, self.raise_in_deleter = raise_in_dlpack, raise_in_deleter
        self.null_deleter = null_deleter
        self.deleted = 0
        self.deleter_threads = []
        self.dlpack_calls = 0
        self.keep = []

    def __dlpack_device__(self):
        return self.device

    def _deleter(self, _ptr):
        self.deleted += 1
        self.deleter_threads.append(threading.get_ident())
        if self.raise_in_deleter:
            raise RuntimeError("deleter failed on purpose")

    def __dlpack__(self, **kw):
        self.dlpack_calls += 1
        if self.raise_in_dlpack is not None:
            raise self.raise_in_dlpack
        n = max(self.ndim, len(self.shape), 1)
        shape = (ctypes.c_int64 * n)(*self.shape) if self.shape != 'null' else None
        strides = (ctypes.c_int64 * n)(*self.strides) if self.strides != 'null' else None
        t = DLTensor(self.a.ctypes.data - self.data_delta, DLDevice(*self.tensor_device),
                     self.ndim, DLDataType(*self.dtype), shape, strides, self.byte_offset)
        if self.versioned:
            deleter = DELV(0) if self.null_deleter else DELV(self._deleter)
            m = MTV(DLPackVersion(self.major, self.minor), None, deleter, self.flags, t)
        else:
            deleter = DEL(0) if self.null_deleter else DEL(self._deleter)
            m = MT(t, None, deleter)
        original = self.name
        def destructor(cap):
            if capsule_name(cap) == original and not self.null_deleter:
                self._deleter(None)
        destructor = CAPDEL(destructor)
        self.keep.append((shape, strides, m, deleter, destructor, original))
        # (the capsule is not kept: it must not outlive its destructor's ctypes thunk)
        return capsule_new(ctypes.addressof(m), original, destructor)
"#;

fn setup(py: Python<'_>) -> Bound<'_, PyDict> {
    let g = namespace(py);
    run(py, &g, PRODUCERS);
    g
}

fn tolist<T: for<'a, 'py> FromPyObject<'a, 'py>>(g: &Bound<'_, PyDict>, expr: &str) -> Vec<T> {
    eval(g, &format!("np.asarray({expr}).ravel().tolist()"))
        .extract()
        .unwrap()
}

fn refcount(g: &Bound<'_, PyDict>, obj: &Bound<'_, PyAny>) -> isize {
    g.set_item("_r", obj).unwrap();
    eval(g, "sys.getrefcount(_r)").extract::<isize>().unwrap() - 1
}

/// The reference count of a `Producer` once every tensor it made is released: its capsule
/// collected and the ctypes objects it keeps for them (which refer back to it) dropped.
fn settled_refcount(g: &Bound<'_, PyDict>, name: &str) -> isize {
    run(g.py(), g, &format!("gc.collect()\n{name}.keep.clear()"));
    named_refcount(g, name)
}

/// `sys.getrefcount` of a name in `g` (counting the references Rust holds, too).
fn named_refcount(g: &Bound<'_, PyDict>, name: &str) -> isize {
    eval(g, &format!("sys.getrefcount({name})"))
        .extract()
        .unwrap()
}

#[test]
fn numpy_versioned_capsules_read_like_numpy() {
    Python::attach(|py| {
        let g = setup(py);
        let cases = [
            "np.arange(12, dtype=np.float64).reshape(3, 4)",
            "np.arange(24, dtype=np.float64).reshape(4, 6)[::2, 1::2]",
            "np.arange(12, dtype=np.float64).reshape(3, 4)[::-1, ::-2]",
            "np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))",
            "np.zeros((0, 3))",
        ];
        for case in cases {
            run(py, &g, &format!("a = {case}"));
            let a = eval(&g, "a");
            let buf = Buffer2::<f64>::from_dlpack(&a).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(buf.source(), Source::DLPack);
            assert_eq!(buf.format(), "<d");
            assert!(!buf.is_readonly());
            assert_eq!(buf.to_vec().unwrap(), tolist::<f64>(&g, "a"), "{case}");
            let shape: Vec<usize> = eval(&g, "list(a.shape)").extract().unwrap();
            assert_eq!(buf.shape(), shape);
            if !buf.is_empty() {
                let strides: Vec<isize> = eval(&g, "list(a.strides)").extract().unwrap();
                assert_eq!(buf.strides(), strides, "{case}");
                assert_eq!(
                    buf.read().unwrap().view().sum(),
                    eval(&g, "float(a.sum())").extract::<f64>().unwrap()
                );
            }
        }
        // 0-d, and element types
        let b = Buffer0::<i16>::from_dlpack(&eval(&g, "np.array(-7, dtype=np.int16)")).unwrap();
        assert_eq!(b.item(()).unwrap(), -7);
        let b = Buffer1::<bool>::from_dlpack(&eval(&g, "np.array([True, False])")).unwrap();
        assert_eq!(b.to_vec().unwrap(), [true, false]);
        assert_eq!(b.format(), "?");
        let b = Buffer1::<num_complex::Complex<f64>>::from_dlpack(&eval(&g, "np.array([1+2j])"))
            .unwrap();
        assert_eq!(b.to_vec().unwrap(), [num_complex::Complex::new(1.0, 2.0)]);
        assert_eq!(b.format(), "<Zd");
        let b = Buffer1::<half::f16>::from_dlpack(&eval(&g, "np.array([1.5], dtype=np.float16)"))
            .unwrap();
        assert_eq!(b.to_vec().unwrap(), [half::f16::from_f32(1.5)]);
        let b =
            Buffer1::<u64>::from_dlpack(&eval(&g, "np.array([2**63], dtype=np.uint64)")).unwrap();
        assert_eq!(b.to_vec().unwrap(), [1u64 << 63]);
        // the wrong element type: the same error as through the buffer protocol
        let a = eval(&g, "np.arange(3, dtype=np.int32)");
        let via_dlpack = Buffer1::<f32>::from_dlpack(&a).unwrap_err();
        assert!(
            matches!(via_dlpack, Error::ElementType { .. }),
            "{via_dlpack}"
        );
        assert!(
            via_dlpack.to_string().contains("of int32 (format '<i')"),
            "{via_dlpack}"
        );
        let err = Buffer2::<i32>::from_dlpack(&a).unwrap_err();
        assert!(matches!(err, Error::Dimensions { .. }), "{err}");
    });
}

#[test]
fn numpy_writes_read_only_and_the_capsule_protocol() {
    Python::attach(|py| {
        let g = setup(py);
        run(py, &g, "a = np.zeros(4)\nf = Forward(a)");
        let f = eval(&g, "f");
        // no buffer protocol on the wrapper: DLPack is found by `get_mut`
        let b = Buffer1::<f64>::get_mut(&f).unwrap();
        assert_eq!(b.source(), Source::DLPack);
        b.set_item(1, 2.5).unwrap();
        b.with_mut(|mut v| v[3] = -1.0).unwrap();
        assert_eq!(tolist::<f64>(&g, "a"), [0.0, 2.5, 0.0, -1.0]);
        // what pybuf asked for, and that it took ownership of the capsule
        assert_eq!(
            eval(&g, "f.calls[-1]").repr().unwrap().to_string(),
            "{'max_version': (1, 1), 'copy': False}"
        );
        assert!(eval(&g, "repr(f.capsules[-1])")
            .to_string()
            .contains("\"used_dltensor_versioned\""));
        drop(b);
        let b = Buffer1::<f64>::get(&f).unwrap();
        assert_eq!(
            eval(&g, "f.calls[-1]").repr().unwrap().to_string(),
            "{'max_version': (1, 1)}"
        );
        drop(b);

        // read-only arrays: READ_ONLY flag
        run(
            py,
            &g,
            "r = np.arange(3.0)\nr.flags.writeable = False\nfr = Forward(r)",
        );
        let err = Buffer1::<f64>::get_mut(&eval(&g, "fr")).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        let err = Buffer1::<f64>::from_dlpack_mut(&eval(&g, "r")).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        let b = Buffer1::<f64>::from_dlpack(&eval(&g, "r")).unwrap();
        assert!(b.is_readonly());
        assert_eq!(b.to_vec().unwrap(), [0.0, 1.0, 2.0]);
        assert!(b.write().is_err());

        // legacy capsules (a producer that refuses keywords): read-only unless numpy's own
        run(py, &g, "l = Legacy(np.arange(5.0))");
        let l = eval(&g, "l");
        let b = Buffer1::<f64>::get(&l).unwrap();
        assert_eq!(b.source(), Source::DLPack);
        assert!(b.is_readonly());
        assert_eq!(b.to_vec().unwrap(), tolist::<f64>(&g, "l.a"));
        assert!(eval(&g, "repr(l.capsules[-1])")
            .to_string()
            .contains("\"used_dltensor\""));
        let err = Buffer1::<f64>::get_mut(&l).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        drop(b);
        // nothing of numpy's stays exported: the array can be resized
        run(py, &g, "del l.capsules[:], f.capsules[:]\nl.a.resize(10, refcheck=False)\na.resize(10, refcheck=False)");
    });
}

#[test]
fn jax_arrays_into_rust() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "import jax, jax.numpy as jnp\n\
             jax.config.update('jax_enable_x64', True)\n\
             xf = jnp.arange(6, dtype=jnp.float32).reshape(2, 3) / 4\n\
             xi = jnp.array([-(2**40), 0, 7], dtype=jnp.int64)\n\
             xb = jnp.array([True, False, True])\n\
             xh = jnp.array([1.5, -2.0, 3.25, 1e10], dtype=jnp.bfloat16)\n",
        );
        let xf = Buffer2::<f32>::from_dlpack(&eval(&g, "xf")).unwrap();
        assert_eq!(xf.to_vec().unwrap(), tolist::<f32>(&g, "xf"));
        assert_eq!(xf.source(), Source::DLPack);
        // jax arrays are immutable; their capsules are legacy ones
        assert!(xf.is_readonly());
        assert!(matches!(
            Buffer2::<f32>::from_dlpack_mut(&eval(&g, "xf")),
            Err(Error::ReadOnly { .. })
        ));
        let xi = Buffer1::<i64>::from_dlpack(&eval(&g, "xi")).unwrap();
        assert_eq!(xi.to_vec().unwrap(), tolist::<i64>(&g, "xi"));
        let xb = Buffer1::<bool>::from_dlpack(&eval(&g, "xb")).unwrap();
        assert_eq!(xb.to_vec().unwrap(), tolist::<bool>(&g, "xb"));

        // bfloat16: jax's buffer protocol refuses it, DLPack carries it, also through `get`
        let xh = eval(&g, "xh");
        let expected: Vec<f32> = tolist(&g, "np.asarray(xh).astype(np.float32)");
        for b in [
            Buffer1::<half::bf16>::get(&xh).unwrap(),
            Buffer1::<half::bf16>::from_dlpack(&xh).unwrap(),
        ] {
            assert_eq!(b.source(), Source::DLPack);
            assert_eq!(b.format(), "E");
            let got: Vec<f32> = b.to_vec().unwrap().iter().map(|x| x.to_f32()).collect();
            assert_eq!(got, expected);
            let viewed: Vec<f32> = b.with(|v| v.iter().map(|x| x.to_f32()).collect()).unwrap();
            assert_eq!(viewed, expected);
        }
        let any = AnyBuffer::get(&xh).unwrap();
        assert_eq!(any.element_kind(), ElementKind::BF16);
        assert_eq!(any.item_layout().unwrap().describe(), "bfloat16");
        let err = Buffer1::<f32>::get(&xh).unwrap_err();
        assert!(matches!(err, Error::ElementType { .. }), "{err}");
        assert!(
            err.to_string().contains("of bfloat16 (format 'E')"),
            "{err}"
        );
        // f32/i64/bool jax arrays come through jax's buffer protocol by default
        assert_eq!(
            Buffer2::<f32>::get(&eval(&g, "xf")).unwrap().source(),
            Source::BufferProtocol
        );
        let err = Buffer1::<half::bf16>::get(&eval(&g, "np.ones(2, np.float16)")).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a 1-D buffer of bfloat16 (bf16, format 'E')"),
            "{err}"
        );
    });
}

#[test]
fn pyarrow_arrays_and_buffers() {
    Python::attach(|py| {
        let g = setup(py);
        run(
            py,
            &g,
            "import pyarrow as pa\n\
             pi = pa.array([1, -2, 3], type=pa.int64())\n\
             pf = pa.array([0.5, 1.5], type=pa.float32())\n\
             pb = pa.py_buffer(b'pybuf')\n\
             pn = pa.array([1, None, 3])\n",
        );
        let pi = Buffer1::<i64>::get(&eval(&g, "pi")).unwrap();
        assert_eq!(pi.source(), Source::DLPack);
        assert_eq!(pi.to_vec().unwrap(), tolist::<i64>(&g, "pi.to_numpy()"));
        let pf = Buffer1::<f32>::get(&eval(&g, "pf")).unwrap();
        assert_eq!(pf.to_vec().unwrap(), tolist::<f32>(&g, "pf.to_numpy()"));
        // (pyarrow exports its buffers as int8, format 'b')
        let pb = Buffer1::<i8>::get(&eval(&g, "pb")).unwrap();
        assert_eq!(pb.source(), Source::BufferProtocol);
        assert_eq!(pb.to_vec().unwrap(), tolist::<i8>(&g, "memoryview(pb)"));
        // pyarrow refuses arrays with nulls: its exception is the cause
        let err = Buffer1::<i64>::get(&eval(&g, "pn")).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert!(err.to_string().contains("no nulls"), "{err}");
    });
}

/// Runs `check` on the error of acquiring the producer built by `expr`, and checks that the
/// deleter ran exactly `deleted` times once everything is dropped, that the producer's
/// reference count is back, and that no exception is left set.
fn expect_error(
    g: &Bound<'_, PyDict>,
    expr: &str,
    deleted: usize,
    check: impl Fn(&Error) -> bool,
    text: &str,
) {
    let py = g.py();
    run(py, g, &format!("p = {expr}"));
    let p = eval(g, "p");
    let before = named_refcount(g, "p");
    for any in [false, true] {
        let err = if any {
            AnyBuffer::from_dlpack(&p).map(drop).unwrap_err()
        } else {
            Buffer1::<f64>::get(&p).map(drop).unwrap_err()
        };
        assert!(check(&err), "{expr}: {err:?}");
        assert!(err.to_string().contains(text), "{expr}: {err}");
        assert!(
            PyErr::take(py).is_none(),
            "{expr}: an exception was left set"
        );
    }
    common::finish_attached_drops(py);
    run(py, g, "gc.collect()");
    let calls: usize = eval(g, "p.dlpack_calls").extract().unwrap();
    let after = settled_refcount(g, "p");
    assert_eq!(
        eval(g, "p.deleted").extract::<usize>().unwrap(),
        deleted * calls,
        "{expr}: deleter calls"
    );
    assert_eq!(after, before, "{expr}: the producer leaked a reference");
}

#[test]
fn bad_producers_are_clear_errors_and_leak_nothing() {
    Python::attach(|py| {
        let g = setup(py);
        run(py, &g, "a = np.arange(4.0)");
        let a = eval(&g, "a");
        let a_before = refcount(&g, &a);
        let device = |e: &Error| {
            matches!(
                e,
                Error::Device {
                    device_type: 2,
                    device_id: 1,
                    ..
                }
            )
        };
        let interchange = |e: &Error| matches!(e, Error::Interchange { .. });
        let invalid = |e: &Error| matches!(e, Error::InvalidLayout { .. });
        expect_error(
            &g,
            "Producer(a, raise_in_dlpack=ValueError)",
            0,
            |e| matches!(e, Error::Refused { .. }),
            "ValueError",
        );
        expect_error(
            &g,
            "Producer(a, device=(2, 1))",
            0,
            device,
            "got a tensor on kDLCUDA (device type 2), device 1, from 'Producer'",
        );
        expect_error(
            &g,
            "Producer(a, tensor_device=(2, 1))",
            1,
            device,
            "kDLCUDA",
        );
        expect_error(
            &g,
            "Producer(a, device=(99, 0))",
            0,
            |e| {
                matches!(
                    e,
                    Error::Device {
                        device_type: 99,
                        ..
                    }
                )
            },
            "a device type dlpack.h does not define",
        );
        expect_error(&g, "Producer(a, name=b'tensor')", 1, interchange,
            "expected a PyCapsule named 'dltensor_versioned' or 'dltensor', found a capsule named \"tensor\"");
        expect_error(
            &g,
            "Producer(a, name=b'used_dltensor')",
            1,
            interchange,
            "\"used_dltensor\"",
        );
        expect_error(
            &g,
            "Producer(a, major=2, minor=3)",
            1,
            interchange,
            "expected DLPack major version 1, found version 2.3",
        );
        expect_error(
            &g,
            "Producer(a, major=0)",
            1,
            interchange,
            "found version 0.0",
        );
        expect_error(
            &g,
            "Producer(a, shape=(-4,))",
            1,
            invalid,
            "negative length -4 on axis 0",
        );
        expect_error(
            &g,
            "Producer(a, strides=(2**61,))",
            1,
            invalid,
            "overflows a byte stride",
        );
        expect_error(
            &g,
            "Producer(a, shape=(2**62,), strides=(1,))",
            1,
            invalid,
            "more than isize::MAX bytes",
        );
        expect_error(
            &g,
            "Producer(a, ndim=65, shape=(1,) * 65, strides=(1,) * 65)",
            1,
            invalid,
            "65 dimensions",
        );
        expect_error(
            &g,
            "Producer(a, ndim=-1)",
            1,
            invalid,
            "negative number of dimensions",
        );
        expect_error(
            &g,
            "Producer(a, data_delta=a.ctypes.data, shape=(4,))",
            1,
            invalid,
            "NULL data pointer",
        );
        expect_error(
            &g,
            "Producer(a, dtype=(17, 4, 1))",
            1,
            interchange,
            "packed 4-bit items",
        );
        expect_error(
            &g,
            "Producer(a, ndim=2, shape='null', strides='null')",
            1,
            interchange,
            "expected a shape for 2 dimensions, found NULL",
        );
        // a capsule that is not one
        run(
            py,
            &g,
            "class NotCapsule:\n    def __dlpack__(self, **kw):\n        return 42\n",
        );
        let err = Buffer1::<f64>::get(&eval(&g, "NotCapsule()")).unwrap_err();
        assert!(err.to_string().contains("found a 'int'"), "{err}");
        run(py, &g, "del p\ngc.collect()");
        assert_eq!(refcount(&g, &a), a_before);

        // exceptions map as documented
        run(py, &g, "p = Producer(a, device=(2, 0))");
        let e = PyErr::from(Buffer1::<f64>::get(&eval(&g, "p")).unwrap_err());
        assert!(e.is_instance_of::<PyBufferError>(py));
        let e = PyErr::from(Buffer1::<f64>::from_dlpack(&eval(&g, "[1.0]")).unwrap_err());
        assert!(e.is_instance_of::<PyTypeError>(py));
        assert!(
            e.to_string()
                .contains("expected an object supporting DLPack (__dlpack__), got 'list'"),
            "{e}"
        );
    });
}

#[test]
fn deleter_runs_once_on_release_wherever_dropped() {
    Python::attach(|py| {
        let g = setup(py);
        run(py, &g, "a = np.arange(6.0)\np = Producer(a)");
        let p = eval(&g, "p");
        let before = named_refcount(&g, "p");
        let deleted = || eval(&g, "p.deleted").extract::<usize>().unwrap();
        let b = Buffer1::<f64>::get(&p).unwrap();
        assert_eq!(b.to_vec().unwrap(), tolist::<f64>(&g, "a"));
        assert!(!b.is_readonly());
        run(py, &g, "gc.collect()");
        assert_eq!(
            deleted(),
            0,
            "the consumed capsule must not call the deleter"
        );
        drop(b);
        common::finish_attached_drops(py);
        assert_eq!(deleted(), 1);
        assert_eq!(settled_refcount(&g, "p"), before);

        // dropped on a thread that is not attached: queued, then released at a safe point
        let b = BufferD::<f64>::get(&p).unwrap();
        let any = AnyBuffer::get(&p).unwrap();
        let worker = py.detach(move || {
            use std::os::unix::thread::JoinHandleExt;
            let handle = std::thread::spawn(move || drop((b, any)));
            let id = handle.as_pthread_t() as u64; // what threading.get_ident() says there
            handle.join().unwrap();
            id
        });
        // released at the next safe point: a pending call between two bytecodes, another
        // thread's acquisition, or here
        // (another test's thread may be in the middle of draining the queue: wait for it)
        let start = std::time::Instant::now();
        while deleted() < 3 && start.elapsed() < std::time::Duration::from_secs(30) {
            pybuf::flush_releases(py);
            run(py, &g, "import time; time.sleep(0.001)");
        }
        assert_eq!(deleted(), 3);
        // never on the worker, which was not attached
        let threads: Vec<u64> = eval(&g, "p.deleter_threads").extract().unwrap();
        assert_eq!(threads.len(), 3);
        assert!(
            !threads.contains(&worker),
            "a deleter ran on the detached worker"
        );
        assert_eq!(settled_refcount(&g, "p"), before);

        // a deleter that raises: reported as unraisable, nothing left set, called once
        run(py, &g, "q = Producer(a, raise_in_deleter=True)");
        let q = eval(&g, "q");
        let b = Buffer1::<f64>::get(&q).unwrap();
        run(
            py,
            &g,
            "caught = []\nold_hook = sys.unraisablehook\n\
             sys.unraisablehook = lambda u: caught.append(str(u.exc_value))",
        );
        drop(b);
        common::finish_attached_drops(py);
        run(py, &g, "sys.unraisablehook = old_hook");
        assert_eq!(eval(&g, "q.deleted").extract::<usize>().unwrap(), 1);
        assert!(PyErr::take(py).is_none());
        let caught: Vec<String> = eval(&g, "caught").extract().unwrap();
        assert_eq!(caught, ["deleter failed on purpose"]);

        // a NULL deleter is allowed by the specification
        run(py, &g, "n = Producer(a, null_deleter=True)");
        let b = Buffer1::<f64>::get(&eval(&g, "n")).unwrap();
        assert_eq!(b.len(), 6);
        drop(b);
    });
}

#[test]
fn hand_made_tensors_offsets_flags_and_types() {
    Python::attach(|py| {
        let g = setup(py);
        run(py, &g, "a = np.arange(8.0)");
        // data + byte_offset is the first element
        let b =
            Buffer1::<f64>::get(&eval(&g, "Producer(a, data_delta=64, byte_offset=64)")).unwrap();
        assert_eq!(b.to_vec().unwrap(), tolist::<f64>(&g, "a"));
        // NULL strides: C order
        let b =
            Buffer2::<f64>::get(&eval(&g, "Producer(a, shape=(2, 4), strides='null')")).unwrap();
        assert_eq!(b.strides(), [32, 8]);
        assert_eq!(b.item((1, 2)).unwrap(), 6.0);
        // negative element strides
        let b = Buffer1::<f64>::get(&eval(&g, "Producer(a[::-2])")).unwrap();
        assert_eq!(b.strides(), [-16]);
        assert_eq!(b.to_vec().unwrap(), tolist::<f64>(&g, "a[::-2]"));
        // READ_ONLY and IS_COPIED with a writable request
        let err = Buffer1::<f64>::get_mut(&eval(&g, "Producer(a, flags=1)")).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        let err = Buffer1::<f64>::get_mut(&eval(&g, "Producer(a, flags=2)")).unwrap_err();
        assert!(err.to_string().contains("IS_COPIED"), "{err}");
        assert!(Buffer1::<f64>::get(&eval(&g, "Producer(a, flags=2)")).is_ok());
        // a legacy capsule from a producer that is not numpy: read-only
        let b = Buffer1::<f64>::get(&eval(&g, "Producer(a, versioned=False)")).unwrap();
        assert!(b.is_readonly());
        // types no element reads: an element-type error naming the DLPack type
        for (dtype, shown) in [
            ("(10, 8, 1)", "DLPack type code 10, 8 bits, 1 lane(s)"),
            ("(2, 32, 2)", "DLPack type code 2, 32 bits, 2 lane(s)"),
            ("(17, 4, 1)", "DLPack type code 17, 4 bits, 1 lane(s)"),
        ] {
            let flags = if dtype.contains("17") { 4 } else { 0 };
            let p = eval(
                &g,
                &format!("Producer(a, dtype={dtype}, flags={flags}, shape=(4,))"),
            );
            let err = Buffer1::<u8>::get(&p).unwrap_err();
            assert!(matches!(err, Error::ElementType { .. }), "{dtype}: {err}");
            assert!(err.to_string().contains(shown), "{dtype}: {err}");
            let any = AnyBuffer::get(&p).unwrap();
            assert_eq!(any.element_kind(), ElementKind::Other);
            assert_eq!(any.len(), 4);
            // the raw bytes are still there to copy
            let itemsize = any.itemsize();
            let bytes: Vec<u8> = eval(&g, &format!("a.tobytes()[:{}]", 4 * itemsize))
                .extract()
                .unwrap();
            assert_eq!(any.to_bytes(ndarray::Order::C).unwrap(), bytes);
        }
    });
}

#[test]
fn downstream_borrows_are_shared_with_the_buffer_protocol() {
    Python::attach(|py| {
        let g = setup(py);
        run(py, &g, "a = np.arange(8.0)\nf = Forward(a)");
        let via_dlpack = Buffer1::<f64>::get_mut(&eval(&g, "f")).unwrap();
        let via_buffer = Buffer1::<f64>::get_mut(&eval(&g, "a")).unwrap();
        let guard = via_dlpack.write().unwrap();
        assert!(matches!(
            via_buffer.read(),
            Err(Error::BorrowConflict { .. })
        ));
        assert!(via_buffer.set_item(0, 1.0).is_err());
        drop(guard);
        via_buffer.set_item(0, 10.0).unwrap();
        assert_eq!(via_dlpack.item(0).unwrap(), 10.0);
        // Send + Sync across threads
        let total = py.detach(|| {
            std::thread::scope(|s| {
                let h = s.spawn(|| via_dlpack.with(|v| v.sum()).unwrap());
                h.join().unwrap()
            })
        });
        assert_eq!(total, 10.0 + (1..8).sum::<i32>() as f64);
        let any = AnyBuffer::from_dlpack(&eval(&g, "a")).unwrap();
        assert_eq!(any.source(), Source::DLPack);
        assert_eq!(any.element_kind(), ElementKind::F64);
        let typed = any.typed::<f64, ndarray::Ix1>().unwrap();
        assert_eq!(typed.source(), Source::DLPack);
        assert_eq!(typed.to_vec().unwrap(), tolist::<f64>(&g, "a"));
    });
}
