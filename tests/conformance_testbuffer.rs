//! CPython's adversarial exporter, `_testbuffer`, pointed at pybuf (CONFORMANCE.md A, B, E).
//!
//! [`testbuffer_grid`] walks the grid of `Lib/test/test_buffer.py`'s `test_ndarray_getbuf`,
//! extended: every native format code and a set of standard-size, big-endian and repeated
//! formats × plain, `[1, 3, 1]`, offset, negative-stride, transposed, zero-stride, 3-D,
//! zero-size and 64-D layouts × the creation flags `0`, `ND_WRITABLE`, `ND_FORTRAN`, `ND_PIL`
//! and their combinations, each also sliced with negative steps, with redundant suboffsets
//! (`add_suboffsets()`), and re-exported with and without `ND_REDIRECT`.
//!
//! For each case the ground truth is CPython's: the exporter's own attributes,
//! `_testbuffer.get_pointer` (`PyBuffer_GetPointer`) for every index,
//! `_testbuffer.py_buffer_to_contiguous` (`PyBuffer_ToContiguous`) in C and F order, and
//! `tolist()` packed with `struct`. pybuf reads each case through `AnyBuffer` and through the
//! typed `Buffer` matching the format, writes it back when writable, and must leave the
//! exporter's reference count as it found it.

mod common;

use std::fmt::Debug;
use std::io::Write;

use common::{as_bytes, eval, namespace, run};
use ndarray::{IxDyn, Order};
use pybuf::{be, AnyBuffer, Buffer, Buffer1, Buffer2, BufferD, Element, Error};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

const GRID: &str = r#"
import itertools, struct, sys
from _testbuffer import *

def items_for(fmt, n):
    if fmt == '3i':
        return [(x, -x, 2**31 - 1 - x) for x in range(n)]
    if fmt == '2h':
        return [(x - 6, -2**15 + x) for x in range(n)]
    code = fmt.lstrip('@=<>!')
    bits = 8 * struct.calcsize(fmt)
    out = []
    for x in range(n):
        if code == '?':
            v = bool(x % 3)
        elif code == 'c':
            v = bytes([(x * 37 + 5) % 256])
        elif code in 'efd':
            v = (x - 5) * 1.25
        elif code in 'bhilqn':
            v = (-(1 << (bits - 1)) + x) if x % 2 else ((1 << (bits - 1)) - 1 - x)
        else:
            v = ((1 << bits) - 1 - 3 * x) if x % 2 else 7 * x
        out.append(v)
    return out

# (shape, strides in items, offset in items), after test_ndarray_getbuf and more
STRUCTURES = [
    ([], [], 0),
    ([1, 3, 1], [], 0),
    ([12], [], 0),
    ([12], [-1], 11),
    ([6], [2], 0),
    ([6], [-2], 11),
    ([4], [-3], 10),
    ([3, 4], [], 0),
    ([3, 4], [-4, -1], 11),
    ([3, 4], [1, 3], 0),
    ([4, 3], [-1, 4], 3),
    ([2, 2], [4, 1], 4),
    ([2, 2], [-4, -1], 8),
    ([3, 4], [0, 1], 0),
    ([4, 3], [1, 0], 0),
    ([2, 3, 2], [], 0),
    ([2, 3, 2], [1, 2, 6], 0),
    ([3, 2, 2], [-4, 2, 1], 8),
    ([0], [], 0),
    ([3, 0], [], 0),
    ([0, 4], [], 0),
    ([2, 0, 3], [], 0),
    ([2, 2, 2] + [1] * 61, [], 0),
]

FLAGS = [0, ND_WRITABLE, ND_FORTRAN, ND_FORTRAN | ND_WRITABLE, ND_PIL, ND_PIL | ND_WRITABLE,
         ND_PIL | ND_FORTRAN]

def flag_name(flags):
    names = [n for n in ('ND_WRITABLE', 'ND_FORTRAN', 'ND_PIL') if flags & globals()[n]]
    return '|'.join(names) or '0'

def grid(fmt):
    size = struct.calcsize(fmt)
    cases, skipped = [], []
    for shape, strides, offset in STRUCTURES:
        for flags in FLAGS:
            if strides and flags & ND_FORTRAN:
                continue
            if not shape and flags & ND_PIL:
                continue
            items = items_for(fmt, 12)
            label = f"format {fmt!r} shape {shape} strides {strides} offset {offset} flags {flag_name(flags)}"
            def make():
                return ndarray(items if shape else items[0], shape=shape,
                               strides=[s * size for s in strides], offset=offset * size,
                               format=fmt, flags=flags)
            try:
                base = make()
            except (ValueError, TypeError, BufferError) as e:
                skipped.append(f"{label}: {e}")
                continue
            cases.append((label, base))
            if shape:
                for sl in (slice(None, None, -1), slice(None, None, -2), slice(1, None, 2)):
                    cases.append((f"{label} [{sl.start}:{sl.stop}:{sl.step}]", base[sl]))
                if len(shape) >= 2:
                    cases.append((f"{label} [::-1, ::-2]", base[::-1, ::-2]))
            if shape and not flags & ND_PIL:
                redundant = make()
                redundant.add_suboffsets()
                cases.append((f"{label} add_suboffsets()", redundant))
            cases.append((f"{label} re-exported", ndarray(base, getbuf=PyBUF_FULL_RO)))
            cases.append((f"{label} ND_REDIRECT", ndarray(base, getbuf=PyBUF_FULL_RO, flags=ND_REDIRECT)))
    return cases, skipped

def flat(x):
    if isinstance(x, list):
        return [z for y in x for z in flat(y)]
    return [x]

def pack(fmt, v):
    return struct.pack(fmt, *v) if isinstance(v, tuple) else struct.pack(fmt, v)

def truth(nd):
    fmt = nd.format
    values = flat(nd.tolist())
    indices = itertools.product(*[range(n) for n in nd.shape])
    exporter = memoryview(nd).obj if nd.ndim <= 64 else nd
    return dict(
        shape=list(nd.shape),
        strides=list(nd.strides),
        suboffsets=list(nd.suboffsets) if nd.suboffsets and any(s >= 0 for s in nd.suboffsets) else None,
        readonly=bool(nd.readonly),
        itemsize=nd.itemsize,
        format=fmt,
        c=py_buffer_to_contiguous(nd, 'C', PyBUF_FULL_RO),
        f=py_buffer_to_contiguous(nd, 'F', PyBUF_FULL_RO),
        tolist=b''.join(pack(fmt, v) for v in values),
        pointers=[pack(fmt, get_pointer(nd, list(i))) for i in indices],
        c_contiguous=bool(is_contiguous(contiguity_twin(nd), 'C')),
        f_contiguous=bool(is_contiguous(contiguity_twin(nd), 'F')),
        exporter=exporter,
    )

def contiguity_twin(nd):
    """The exporter itself, or for redundant (all negative) suboffsets, the same shape and
    strides without suboffsets: PyBuffer_IsContiguous answers 0 for any non-NULL suboffsets,
    while pybuf (CONFORMANCE.md A) treats all-negative suboffsets as no indirection."""
    if not nd.suboffsets or any(s >= 0 for s in nd.suboffsets):
        return nd
    size = nd.itemsize
    spans = [(n - 1) * s for n, s in zip(nd.shape, nd.strides)] if 0 not in nd.shape else []
    low = sum(x for x in spans if x < 0)
    high = sum(x for x in spans if x > 0)
    count = (high - low) // size + 1
    item = items_for(nd.format, 1)[0]
    if 0 in nd.shape:
        return ndarray([item], shape=list(nd.shape), format=nd.format)
    return ndarray([item] * count, shape=list(nd.shape), strides=list(nd.strides),
                   offset=-low, format=nd.format)

def refcounts(nd):
    return (sys.getrefcount(nd), sys.getrefcount(nd.obj) if nd.obj is not None else 0)
"#;

/// Standard-size, big-endian and repeated formats added to every native code.
const EXTRA_FORMATS: &[&str] = &[
    "<i", "=l", "=L", "<q", "<d", "<e", "=?", ">h", "!H", ">l", ">I", "!q", ">Q", ">f", ">d", ">b",
    ">?", "3i", "2h",
];
const NATIVE_FORMATS: &[&str] = &[
    "?", "c", "b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "n", "N", "e", "f", "d", "P", "@i",
    "@d",
];

/// CPython's answers for one case.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
struct Truth<'py> {
    shape: Vec<usize>,
    strides: Vec<isize>,
    suboffsets: Option<Vec<isize>>,
    readonly: bool,
    itemsize: usize,
    format: String,
    c: Vec<u8>,
    f: Vec<u8>,
    tolist: Vec<u8>,
    pointers: Vec<Vec<u8>>,
    c_contiguous: bool,
    f_contiguous: bool,
    exporter: Bound<'py, PyAny>,
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

fn ensure_eq<A: PartialEq<B> + Debug, B: Debug>(a: A, b: B, what: &str) -> Result<(), String> {
    ensure!(a == b, "{what}: pybuf {a:?}, CPython {b:?}");
    Ok(())
}

/// Every index of `shape` in C order.
fn c_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..n {
        out.push(index.clone());
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

fn c_bytes_now(g: &Bound<'_, PyDict>, nd: &Bound<'_, PyAny>) -> Vec<u8> {
    g.set_item("_nd", nd).unwrap();
    eval(g, "py_buffer_to_contiguous(_nd, 'C', PyBUF_FULL_RO)")
        .extract()
        .unwrap()
}

/// Whether two distinct items share memory (a zero stride on an axis of length > 1); such
/// layouts are read but not written back.
fn self_overlapping(t: &Truth<'_>) -> bool {
    t.shape.iter().all(|&n| n > 0)
        && t.shape
            .iter()
            .zip(&t.strides)
            .any(|(&n, &s)| n > 1 && s == 0)
}

/// Reads (and writes, when writable) one case through the typed API as `T`.
fn check_typed<'py, T: Element + Debug>(
    g: &Bound<'py, PyDict>,
    nd: &Bound<'py, PyAny>,
    t: &Truth<'py>,
) -> Result<(), String> {
    let any = AnyBuffer::get(nd).map_err(|e| format!("AnyBuffer::get: {e}"))?;
    let buf: BufferD<T> = any
        .typed::<T, IxDyn>()
        .map_err(|e| format!("typed::<{}>: {e}", std::any::type_name::<T>()))?;
    let c = buf
        .to_vec_in(Order::C)
        .map_err(|e| format!("to_vec: {e}"))?;
    ensure_eq(as_bytes(&c), &t.c[..], "typed copy in C order")?;
    ensure_eq(as_bytes(&c), &t.tolist[..], "typed copy against tolist()")?;
    let f = buf
        .to_vec_in(Order::F)
        .map_err(|e| format!("to_vec_in(F): {e}"))?;
    ensure_eq(as_bytes(&f), &t.f[..], "typed copy in F order")?;
    let indices = c_indices(&t.shape);
    ensure_eq(indices.len(), t.pointers.len(), "number of indices")?;
    for (index, expected) in indices.iter().zip(&t.pointers) {
        let v = buf
            .item(IxDyn(index))
            .map_err(|e| format!("item {index:?}: {e}"))?;
        ensure_eq(
            as_bytes(&[v]),
            &expected[..],
            &format!("item {index:?} vs get_pointer"),
        )?;
    }
    match buf.read() {
        Ok(guard) => {
            ensure!(
                t.suboffsets.is_none(),
                "read() gave a view of a suboffset layout"
            );
            let viewed: Vec<T> = guard.view().iter().copied().collect();
            ensure_eq(as_bytes(&viewed), &t.c[..], "read() view in logical order")?;
        }
        Err(Error::Suboffsets) if t.suboffsets.is_some() => {}
        Err(e) => return Err(format!("read(): {e}")),
    }
    // the same through the static-dimension handles and a fresh acquisition
    match t.shape.len() {
        1 => {
            let b1 = Buffer1::<T>::get(nd).map_err(|e| format!("Buffer1::get: {e}"))?;
            ensure_eq(
                as_bytes(&b1.to_vec().map_err(|e| e.to_string())?),
                &t.c[..],
                "Buffer1 copy",
            )?;
        }
        2 => {
            let b2 = Buffer2::<T>::get(nd).map_err(|e| format!("Buffer2::get: {e}"))?;
            ensure_eq(
                as_bytes(&b2.to_vec_in(Order::F).map_err(|e| e.to_string())?),
                &t.f[..],
                "Buffer2 copy in F order",
            )?;
        }
        _ => {}
    }
    drop(buf);

    if t.readonly {
        match Buffer::<T, IxDyn>::get_mut(nd) {
            Err(Error::ReadOnly { .. }) => {}
            Err(e) => return Err(format!("get_mut on read-only: wrong error {e}")),
            Ok(_) => return Err("get_mut succeeded on read-only memory".into()),
        }
        return Ok(());
    }
    if self_overlapping(t) {
        return Ok(());
    }
    let buf = Buffer::<T, IxDyn>::get_mut(nd).map_err(|e| format!("get_mut: {e}"))?;
    // write the items back reversed (C order), check with CPython, restore through F order
    let mut reversed = c.clone();
    reversed.reverse();
    buf.copy_from_slice_in(&reversed, Order::C)
        .map_err(|e| format!("copy_from_slice: {e}"))?;
    ensure_eq(
        c_bytes_now(g, nd),
        as_bytes(&reversed),
        "after writing reversed items",
    )?;
    buf.copy_from_slice_in(&f, Order::F)
        .map_err(|e| format!("copy_from_slice_in(F): {e}"))?;
    ensure_eq(c_bytes_now(g, nd), &t.c[..], "after restoring in F order")?;
    if let Some(last) = indices.last() {
        buf.set_item(IxDyn(last), c[0])
            .map_err(|e| format!("set_item: {e}"))?;
        g.set_item("_nd", nd).unwrap();
        g.set_item("_i", last.clone()).unwrap();
        let at: Vec<u8> = eval(g, "pack(_nd.format, get_pointer(_nd, _i))")
            .extract()
            .unwrap();
        ensure_eq(at, &t.pointers[0][..], "get_pointer after set_item")?;
        buf.set_item(IxDyn(last), *c.last().unwrap())
            .map_err(|e| format!("set_item: {e}"))?;
        ensure_eq(c_bytes_now(g, nd), &t.c[..], "after restoring set_item")?;
    }
    Ok(())
}

type Check =
    for<'py> fn(&Bound<'py, PyDict>, &Bound<'py, PyAny>, &Truth<'py>) -> Result<(), String>;

/// The typed element for a format, as the buffer protocol defines it on this (LP64,
/// little-endian) machine.
fn typed_check(format: &str) -> Option<Check> {
    let (prefix, code) = match format.chars().next() {
        Some(p @ ('@' | '=' | '<' | '>' | '!')) => (p, &format[1..]),
        _ => ('@', format),
    };
    let native = prefix == '@';
    let big = prefix == '>' || prefix == '!';
    Some(match (code, native, big) {
        ("?", _, _) => check_typed::<bool>,
        ("c" | "B", _, _) => check_typed::<u8>,
        ("b", _, _) => check_typed::<i8>,
        ("h", _, false) => check_typed::<i16>,
        ("H", _, false) => check_typed::<u16>,
        ("i", _, false) => check_typed::<i32>,
        ("I", _, false) => check_typed::<u32>,
        ("l", true, _) => check_typed::<i64>,
        ("L", true, _) => check_typed::<u64>,
        ("l", false, false) => check_typed::<i32>,
        ("L", false, false) => check_typed::<u32>,
        ("q", _, false) => check_typed::<i64>,
        ("Q", _, false) => check_typed::<u64>,
        ("n", true, _) => check_typed::<isize>,
        ("N" | "P", true, _) => check_typed::<usize>,
        ("e", _, false) => check_typed::<half::f16>,
        ("f", _, false) => check_typed::<f32>,
        ("d", _, false) => check_typed::<f64>,
        ("h", _, true) => check_typed::<be::I16>,
        ("H", _, true) => check_typed::<be::U16>,
        ("i" | "l", _, true) => check_typed::<be::I32>,
        ("I" | "L", _, true) => check_typed::<be::U32>,
        ("q", _, true) => check_typed::<be::I64>,
        ("Q", _, true) => check_typed::<be::U64>,
        ("f", _, true) => check_typed::<be::F32>,
        ("d", _, true) => check_typed::<be::F64>,
        ("3i", true, _) => check_typed::<[i32; 3]>,
        ("2h", true, _) => check_typed::<[i16; 2]>,
        _ => return None,
    })
}

/// One grid case: `AnyBuffer` metadata and copies, then the typed checks.
fn check_case<'py>(g: &Bound<'py, PyDict>, nd: &Bound<'py, PyAny>) -> Result<(), String> {
    g.set_item("_nd", nd).unwrap();
    let t: Truth<'py> = eval(g, "truth(_nd)").extract().unwrap();
    let before: (isize, isize) = eval(g, "refcounts(_nd)").extract().unwrap();
    {
        let any = AnyBuffer::get(nd).map_err(|e| format!("AnyBuffer::get: {e}"))?;
        ensure_eq(any.shape(), &t.shape[..], "shape")?;
        ensure_eq(any.ndim(), t.shape.len(), "ndim")?;
        ensure_eq(any.itemsize(), t.itemsize, "itemsize")?;
        ensure_eq(any.format(), t.format.as_str(), "format")?;
        ensure_eq(any.is_readonly(), t.readonly, "readonly")?;
        ensure_eq(any.len(), t.pointers.len(), "len")?;
        if !any.is_empty() {
            // empty buffers may report any strides; pybuf passes them through
            ensure_eq(any.strides(), &t.strides[..], "strides")?;
        }
        ensure_eq(any.suboffsets(), t.suboffsets.as_deref(), "suboffsets")?;
        ensure_eq(any.is_c_contiguous(), t.c_contiguous, "C-contiguous")?;
        ensure_eq(any.is_f_contiguous(), t.f_contiguous, "F-contiguous")?;
        ensure!(
            any.obj(g.py()).is(&t.exporter),
            "obj: pybuf {:?}, CPython {:?}",
            any.obj(g.py()),
            t.exporter
        );
        let c = any
            .to_bytes(Order::C)
            .map_err(|e| format!("to_bytes(C): {e}"))?;
        ensure_eq(&c, &t.c[..], "AnyBuffer bytes in C order")?;
        let f = any
            .to_bytes(Order::F)
            .map_err(|e| format!("to_bytes(F): {e}"))?;
        ensure_eq(&f, &t.f[..], "AnyBuffer bytes in F order")?;
        match any.item_layout() {
            Ok(item) => ensure_eq(item.size, t.itemsize, "parsed item size")?,
            Err(e) => return Err(format!("format {:?} did not parse: {e}", t.format)),
        }
    }
    match typed_check(&t.format) {
        Some(check) => check(g, nd, &t)?,
        None => return Err(format!("no typed element for format {:?}", t.format)),
    }
    common::finish_attached_drops(g.py());
    let after: (isize, isize) = eval(g, "refcounts(_nd)").extract().unwrap();
    ensure_eq(
        after,
        before,
        "reference counts (exporter, its base) after release",
    )?;
    Ok(())
}

#[test]
fn testbuffer_grid() {
    Python::attach(|py| {
        let g = namespace(py);
        run(py, &g, GRID);
        let (mut cases, mut passed) = (0usize, 0usize);
        let mut skipped: Vec<String> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        for format in NATIVE_FORMATS.iter().chain(EXTRA_FORMATS) {
            g.set_item("_fmt", format).unwrap();
            let (grid, skip): (Bound<'_, PyList>, Vec<String>) =
                eval(&g, "grid(_fmt)").extract().unwrap();
            skipped.extend(skip);
            for case in grid.iter() {
                let (label, nd): (String, Bound<'_, PyAny>) = case.extract().unwrap();
                cases += 1;
                match check_case(&g, &nd) {
                    Ok(()) => passed += 1,
                    Err(e) => failures.push(format!("{label}: {e}")),
                }
            }
        }
        // written to the stderr handle, not through eprintln!, so that the test harness does
        // not capture it: CI logs show the grid's size on success too
        let _ = writeln!(
            std::io::stderr(),
            "_testbuffer grid: {cases} cases, {passed} passed, {} failed ({} layouts the \
             exporter itself refuses to build)",
            failures.len(),
            skipped.len()
        );
        for f in failures.iter().take(40) {
            eprintln!("FAILED {f}");
        }
        assert!(cases > 3000, "the grid shrank to {cases} cases");
        assert!(
            failures.is_empty(),
            "{} of {cases} grid cases failed; first: {}",
            failures.len(),
            failures[0]
        );
    });
}

/// `staticarray` ignores request flags (read-only memory even for a writable request); in
/// legacy mode it also leaves `view.obj` NULL. Re-exporters pass it on, with and without
/// `ND_REDIRECT`. (`core_writes` covers the plain writable-request refusal.)
#[test]
fn staticarray_legacy_mode_and_redirect_chains() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "x = _testbuffer.staticarray()\n\
             y = _testbuffer.ndarray(x, getbuf=_testbuffer.PyBUF_FULL_RO, flags=_testbuffer.ND_REDIRECT)\n\
             z = _testbuffer.ndarray(y, getbuf=_testbuffer.PyBUF_FULL_RO, flags=_testbuffer.ND_REDIRECT)\n\
             lx = _testbuffer.staticarray(legacy_mode=True)\n\
             ly = _testbuffer.ndarray(lx, getbuf=_testbuffer.PyBUF_FULL_RO)\n\
             lz = _testbuffer.ndarray(ly, getbuf=_testbuffer.PyBUF_FULL_RO, flags=_testbuffer.ND_REDIRECT)\n",
        );
        let expected: Vec<u8> = (0..12).collect();
        for (name, obj_is) in [
            ("x", Some("x")),
            ("z", Some("x")),
            ("lx", None),
            ("ly", Some("ly")),
            ("lz", Some("ly")),
        ] {
            let x = eval(&g, name);
            let before: isize = eval(&g, &format!("sys.getrefcount({name})"))
                .extract()
                .unwrap();
            {
                let any = AnyBuffer::get(&x).unwrap();
                assert!(any.is_readonly(), "{name}");
                assert_eq!(any.to_bytes(Order::C).unwrap(), expected, "{name}");
                match obj_is {
                    Some(o) => assert!(any.obj(py).is(eval(&g, o)), "{name}.obj"),
                    None => assert!(any.obj(py).is_none(), "{name}.obj"),
                }
                let buf = Buffer1::<u8>::get(&x).unwrap();
                assert_eq!(buf.to_vec().unwrap(), expected, "{name}");
                assert_eq!(buf.item(11).unwrap(), 11);
                assert!(matches!(buf.set_item(0, 1), Err(Error::ReadOnly { .. })));
                assert!(matches!(
                    Buffer1::<u8>::get_mut(&x),
                    Err(Error::ReadOnly { .. })
                ));
            }
            common::finish_attached_drops(py);
            let after: isize = eval(&g, &format!("sys.getrefcount({name})"))
                .extract()
                .unwrap();
            assert_eq!(after, before, "{name}: reference leaked or released twice");
        }
    });
}

/// An exporter that fails `getbuffer` and leaves `view.obj` undefined (`ND_GETBUF_UNDEFINED`):
/// the failed request must never be released. (`core_errors` covers plain `ND_GETBUF_FAIL`.)
#[test]
fn failed_getbuffer_with_undefined_view_is_never_released() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(
            &g,
            "_testbuffer.ndarray([1, 2, 3], shape=[3], flags=_testbuffer.ND_GETBUF_FAIL | _testbuffer.ND_GETBUF_UNDEFINED)",
        );
        let before: isize = {
            g.set_item("_x", &x).unwrap();
            eval(&g, "sys.getrefcount(_x)").extract().unwrap()
        };
        for _ in 0..200 {
            assert!(matches!(
                AnyBuffer::get(&x),
                Err(Error::Refused {
                    writable: false,
                    ..
                })
            ));
            assert!(matches!(
                Buffer1::<u8>::get_mut(&x),
                Err(Error::Refused { writable: true, .. })
            ));
        }
        let after: isize = eval(&g, "sys.getrefcount(_x)").extract().unwrap();
        assert_eq!(after, before);
    });
}

/// A re-exporter that only holds a `PyBUF_SIMPLE` view cannot answer pybuf's full request:
/// a clean refusal with the exporter's reason as the cause.
#[test]
fn simple_re_exporter_refuses_the_full_request() {
    Python::attach(|py| {
        let g = namespace(py);
        let x = eval(
            &g,
            "_testbuffer.ndarray(_testbuffer.ndarray([9], [1]), getbuf=_testbuffer.PyBUF_SIMPLE)",
        );
        let err = AnyBuffer::get(&x).unwrap_err();
        let Error::Refused { cause, .. } = &err else {
            panic!("expected a refusal, got {err}");
        };
        assert!(
            cause
                .to_string()
                .contains("re-exporter does not provide format, shape or strides"),
            "{cause}"
        );
    });
}

/// `_testbuffer.ndarray` refuses to change its memory while exported: pybuf's buffer counts
/// as an export until it is dropped. With `ND_VAREXPORT` the exporter may change anyway, and
/// the held buffer keeps the old memory alive and intact.
#[test]
fn held_buffers_are_exports_and_varexport_keeps_old_memory() {
    Python::attach(|py| {
        let g = namespace(py);
        run(
            py,
            &g,
            "nd = _testbuffer.ndarray(list(range(12)), shape=[12], format='i', flags=_testbuffer.ND_WRITABLE)\n\
             def push(x):\n    try:\n        x.push([7, 8], shape=[2], format='i')\n        return True\n    except BufferError:\n        return False\n",
        );
        let nd = eval(&g, "nd");
        let buf = Buffer1::<i32>::get_mut(&nd).unwrap();
        assert!(!eval(&g, "push(nd)").extract::<bool>().unwrap());
        drop(buf);
        common::finish_attached_drops(py);
        assert!(eval(&g, "push(nd)").extract::<bool>().unwrap());
        assert_eq!(
            eval(&g, "nd.tolist()").extract::<Vec<i32>>().unwrap(),
            [7, 8]
        );

        run(
            py,
            &g,
            "v = _testbuffer.ndarray(list(range(12)), shape=[3, 4], format='i', flags=_testbuffer.ND_VAREXPORT | _testbuffer.ND_WRITABLE)\n",
        );
        let v = eval(&g, "v");
        let old = Buffer2::<i32>::get_mut(&v).unwrap();
        assert!(eval(&g, "push(v)").extract::<bool>().unwrap());
        assert_eq!(
            eval(&g, "v.tolist()").extract::<Vec<i32>>().unwrap(),
            [7, 8]
        );
        assert_eq!(old.shape(), &[3, 4]);
        assert_eq!(old.to_vec().unwrap(), (0..12).collect::<Vec<i32>>());
        old.set_item((2, 3), -1).unwrap();
        assert_eq!(old.item((2, 3)).unwrap(), -1);
        let new = Buffer1::<i32>::get(&v).unwrap();
        assert_eq!(new.to_vec().unwrap(), [7, 8]);
    });
}
