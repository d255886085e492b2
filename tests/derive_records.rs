//! `#[derive(pybuf::Element)]` records read from real exporters: numpy structured arrays and
//! ctypes `Structure` arrays, every field compared with what Python itself reports.

use std::ffi::CString;

use proptest::prelude::*;
use pybuf::format::{parse, Endian, Mismatch};
use pybuf::{be, Buffer1, Element, Error};
use pyo3::prelude::*;
use pyo3::types::PyDict;

// ---------------------------------------------------------------------------------------------
// helpers

/// Runs `code` in a fresh namespace (numpy as `np`, ctypes imported) and returns it.
fn run<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyDict> {
    let ns = PyDict::new(py);
    let code = CString::new(format!("import numpy as np\nimport ctypes, sys\n{code}")).unwrap();
    py.run(&code, Some(&ns), None)
        .unwrap_or_else(|e| panic!("python failed: {e}"));
    ns
}

fn get<'py>(ns: &Bound<'py, PyDict>, name: &str) -> Bound<'py, PyAny> {
    ns.get_item(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not defined"))
}

fn extract<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    ns: &Bound<'py, PyDict>,
    expr: &str,
) -> T {
    let py = ns.py();
    let code = CString::new(expr).unwrap();
    let value = py
        .eval(&code, Some(ns), None)
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let extracted = value.extract::<T>().ok();
    extracted.unwrap_or_else(|| panic!("{expr}: unexpected Python type"))
}

/// `memoryview(obj).format` and `.itemsize`, as Python reports them.
fn format_of(obj: &Bound<'_, PyAny>) -> (String, usize) {
    let mv = obj
        .py()
        .import("builtins")
        .unwrap()
        .getattr("memoryview")
        .unwrap()
        .call1((obj,))
        .unwrap();
    (
        mv.getattr("format").unwrap().extract().unwrap(),
        mv.getattr("itemsize").unwrap().extract().unwrap(),
    )
}

/// Parses the exporter's format, checks its size against `itemsize` and matches it with
/// `S::layout()`.
fn match_format<S: Element>(obj: &Bound<'_, PyAny>) -> Result<(), Mismatch> {
    let (format, itemsize) = format_of(obj);
    let item = parse(&format).unwrap_or_else(|e| panic!("{format}: {e}"));
    assert_eq!(item.size, itemsize, "format {format} vs itemsize");
    item.matches(&S::layout())
}

/// Copies records out of raw item bytes (what Python's `bytes(x)` gives), refusing invalid
/// ones; the reference path for exporters whose format cannot be trusted.
fn records_from_bytes<S: Element>(bytes: &[u8]) -> Result<Vec<S>, usize> {
    let size = std::mem::size_of::<S>();
    assert_eq!(bytes.len() % size, 0);
    bytes
        .chunks_exact(size)
        .enumerate()
        .map(|(i, chunk)| {
            if !S::is_valid(chunk) {
                return Err(i);
            }
            // SAFETY: `chunk` is `size_of::<S>()` initialized bytes that `S::is_valid`
            // accepts, which the `Element` contract says form a valid `S`; `read_unaligned`
            // needs no alignment.
            Ok(unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast::<S>()) })
        })
        .collect()
}

/// Python's view of the offsets of the fields of a ctypes Structure class.
fn ctypes_offsets(ns: &Bound<'_, PyDict>, class: &str) -> Vec<(String, usize)> {
    extract(
        ns,
        &format!("[(n, getattr({class}, n).offset) for n, *_ in {class}._fields_]"),
    )
}

fn layout_offsets<S: Element>() -> Vec<(String, usize)> {
    match S::layout().kind {
        pybuf::format::ItemKind::Struct(fields) => fields
            .into_iter()
            .map(|f| (f.name.unwrap_or_default(), f.offset))
            .collect(),
        other => panic!("not a struct: {other:?}"),
    }
}

/// numpy's own reading of our layout's format (numpy's PEP 3118 parser).
fn numpy_dtype_equal<S: Element>(ns: &Bound<'_, PyDict>, dtype_expr: &str) -> bool {
    ns.set_item("our_format", S::layout().to_format()).unwrap();
    extract(
        ns,
        &format!(
            "(lambda f: f(our_format) == {dtype_expr})(\
             getattr(np, '_core', None) and np._core._internal._dtype_from_pep3118 \
             or np.core._internal._dtype_from_pep3118)"
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// numpy structured arrays

/// `np.dtype([('a','i4'),('b','f8'),('c','?'),('d','u2')], align=True)`: padding after `a`
/// and at the end.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Aligned {
    a: i32,
    b: f64,
    c: bool,
    d: u16,
}

/// The same fields without alignment (`align=False`).
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C, packed)]
struct Packed {
    a: i32,
    b: f64,
    c: bool,
    d: u16,
}

const ABCD: &str = "fields = [('a','i4'),('b','f8'),('c','?'),('d','u2')]
vals = [(1, 1.5, True, 7), (-2, -0.25, False, 65535), (2**31-1, 1e300, True, 0)]";

#[test]
fn numpy_aligned_record() {
    Python::attach(|py| {
        let ns = run(
            py,
            &format!("{ABCD}\ndt = np.dtype(fields, align=True)\nx = np.array(vals, dtype=dt)"),
        );
        assert_eq!(extract::<usize>(&ns, "dt.itemsize"), size_of::<Aligned>());
        assert_eq!(
            extract::<Vec<usize>>(&ns, "[dt.fields[n][1] for n in dt.names]"),
            layout_offsets::<Aligned>()
                .into_iter()
                .map(|(_, o)| o)
                .collect::<Vec<_>>()
        );
        assert!(numpy_dtype_equal::<Aligned>(&ns, "dt"));
        let x = get(&ns, "x");
        assert_eq!(match_format::<Aligned>(&x), Ok(()));
        let recs = Buffer1::<Aligned>::get(&x).unwrap().to_vec().unwrap();
        let a: Vec<i32> = extract(&ns, "x['a'].tolist()");
        let b: Vec<f64> = extract(&ns, "x['b'].tolist()");
        let c: Vec<bool> = extract(&ns, "x['c'].tolist()");
        let d: Vec<u16> = extract(&ns, "x['d'].tolist()");
        assert_eq!(recs.len(), 3);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!((r.a, r.b, r.c, r.d), (a[i], b[i], c[i], d[i]));
        }
    });
}

#[test]
fn numpy_packed_record() {
    Python::attach(|py| {
        let ns = run(
            py,
            &format!("{ABCD}\ndt = np.dtype(fields)\nx = np.array(vals, dtype=dt)"),
        );
        assert_eq!(extract::<usize>(&ns, "dt.itemsize"), size_of::<Packed>());
        assert!(numpy_dtype_equal::<Packed>(&ns, "dt"));
        let x = get(&ns, "x");
        assert_eq!(match_format::<Packed>(&x), Ok(()));
        // the aligned record has other offsets and size
        assert_eq!(match_format::<Aligned>(&x), Err(Mismatch::Layout));
        let recs = Buffer1::<Packed>::get(&x).unwrap().to_vec().unwrap();
        let a: Vec<i32> = extract(&ns, "x['a'].tolist()");
        let b: Vec<f64> = extract(&ns, "x['b'].tolist()");
        let c: Vec<bool> = extract(&ns, "x['c'].tolist()");
        let d: Vec<u16> = extract(&ns, "x['d'].tolist()");
        for (i, r) in recs.iter().enumerate() {
            // copy the packed fields out before comparing (no references to them)
            let (ra, rb, rc, rd) = (r.a, r.b, r.c, r.d);
            assert_eq!((ra, rb, rc, rd), (a[i], b[i], c[i], d[i]));
        }
        // the bytewise reference path agrees
        let raw: Vec<u8> = extract(&ns, "x.tobytes()");
        let again = records_from_bytes::<Packed>(&raw).unwrap();
        for (r, s) in recs.iter().zip(&again) {
            let (ra, rb, sa, sb) = (r.a, r.b, s.a, s.b);
            assert_eq!((ra, rb.to_bits()), (sa, sb.to_bits()));
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Inner {
    x: i16,
    y: u8,
    w: u8,
}

/// Nested struct, sub-array and 2-D sub-array fields.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Outer {
    id: u32,
    v: [f32; 3],
    inner: Inner,
    flags: [bool; 2],
    m: [[i16; 2]; 2],
    z: num_complex::Complex<f64>,
}

#[test]
fn numpy_nested_and_subarray_fields() {
    Python::attach(|py| {
        let ns = run(
            py,
            "inner = np.dtype([('x','i2'),('y','u1'),('w','u1')], align=True)
dt = np.dtype([('id','u4'),('v','f4',(3,)),('inner',inner),('flags','?',(2,)),
               ('m','i2',(2,2)),('z','c16')], align=True)
x = np.zeros(4, dtype=dt)
x['id'] = [10, 20, 30, 4000000000]
x['v'] = np.arange(12, dtype='f4').reshape(4, 3) * 0.5 - 1
x['inner']['x'] = [-1, 2, -32768, 32767]
x['inner']['y'] = [0, 1, 255, 128]
x['inner']['w'] = [9, 8, 7, 6]
x['flags'] = [[True, False], [False, True], [True, True], [False, False]]
x['m'] = np.arange(16, dtype='i2').reshape(4, 2, 2) - 8
x['z'] = [1+2j, -3.5j, 0, 1e-300-1e300j]",
        );
        assert_eq!(extract::<usize>(&ns, "dt.itemsize"), size_of::<Outer>());
        assert!(numpy_dtype_equal::<Outer>(&ns, "dt"));
        let x = get(&ns, "x");
        assert_eq!(match_format::<Outer>(&x), Ok(()));
        let recs = Buffer1::<Outer>::get(&x).unwrap().to_vec().unwrap();
        let id: Vec<u32> = extract(&ns, "x['id'].tolist()");
        let v: Vec<[f32; 3]> = extract(&ns, "x['v'].tolist()");
        let ix: Vec<i16> = extract(&ns, "x['inner']['x'].tolist()");
        let iy: Vec<u8> = extract(&ns, "x['inner']['y'].tolist()");
        let iw: Vec<u8> = extract(&ns, "x['inner']['w'].tolist()");
        let flags: Vec<[bool; 2]> = extract(&ns, "x['flags'].tolist()");
        let m: Vec<[[i16; 2]; 2]> = extract(&ns, "x['m'].tolist()");
        let z: Vec<(f64, f64)> = extract(&ns, "[(c.real, c.imag) for c in x['z'].tolist()]");
        assert_eq!(recs.len(), 4);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.id, id[i]);
            assert_eq!(r.v, v[i]);
            assert_eq!(
                r.inner,
                Inner {
                    x: ix[i],
                    y: iy[i],
                    w: iw[i]
                }
            );
            assert_eq!(r.flags, flags[i]);
            assert_eq!(r.m, m[i]);
            assert_eq!((r.z.re, r.z.im), z[i]);
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct InnerPadded {
    x: i16,
    y: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct OuterPadded {
    inner: InnerPadded,
    flag: bool,
    f: f32,
}

/// numpy writes a nested aligned struct without its trailing padding (`'T{h:x:B:y:}'` for a
/// 4-byte item) and then pads the outer struct explicitly, while the PEP 3118 native rules
/// (and numpy's own format parser) pad the nested struct to its alignment: the format then
/// places the following fields elsewhere than the dtype does. pybuf must accept such an array
/// exactly when its format agrees with the dtype's offsets, and then read the right values.
#[test]
fn numpy_nested_struct_with_trailing_padding() {
    Python::attach(|py| {
        let ns = run(
            py,
            "inner = np.dtype([('x','i2'),('y','u1')], align=True)
dt = np.dtype([('inner', inner), ('flag', '?'), ('f', 'f4')], align=True)
x = np.array([((1, 2), True, 0.5), ((-3, 250), False, -8.0)], dtype=dt)
offsets = [dt.fields[n][1] for n in dt.names]",
        );
        assert_eq!(
            extract::<usize>(&ns, "dt.itemsize"),
            size_of::<OuterPadded>()
        );
        let numpy_offsets: Vec<usize> = extract(&ns, "offsets");
        let ours: Vec<usize> = layout_offsets::<OuterPadded>()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(numpy_offsets, ours);
        let x = get(&ns, "x");
        let (format, itemsize) = format_of(&x);
        let parsed = parse(&format).unwrap();
        let parsed_offsets: Vec<usize> = match &parsed.kind {
            pybuf::format::ItemKind::Struct(fields) => fields.iter().map(|f| f.offset).collect(),
            other => panic!("{format}: {other:?}"),
        };
        let format_agrees = parsed.size == itemsize && parsed_offsets == numpy_offsets;
        let read = Buffer1::<OuterPadded>::get(&x).and_then(|b| b.to_vec());
        assert_eq!(read.is_ok(), format_agrees, "{format}: {read:?}");
        if let Ok(recs) = read {
            let back: Vec<((i16, u8), bool, f32)> = extract(&ns, "x.tolist()");
            let got: Vec<((i16, u8), bool, f32)> = recs
                .iter()
                .map(|r| ((r.inner.x, r.inner.y), r.flag, r.f))
                .collect();
            assert_eq!(got, back);
        }
    });
}

/// Byte-swapped fields mixed with a native one, packed like numpy's default dtype.
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C, packed)]
struct Swapped {
    a: be::F64,
    b: i32,
    c: be::U16,
    d: be::I64,
}

#[test]
fn numpy_byte_swapped_fields() {
    Python::attach(|py| {
        let ns = run(
            py,
            "dt = np.dtype([('a','>f8'),('b','<i4'),('c','>u2'),('d','>i8')])
x = np.array([(1.25, -5, 513, -2), (-1e-10, 2**31-1, 65534, 2**62)], dtype=dt)",
        );
        assert_eq!(extract::<usize>(&ns, "dt.itemsize"), size_of::<Swapped>());
        let x = get(&ns, "x");
        assert_eq!(match_format::<Swapped>(&x), Ok(()));
        let recs = Buffer1::<Swapped>::get(&x).unwrap().to_vec().unwrap();
        let a: Vec<f64> = extract(&ns, "x['a'].tolist()");
        let b: Vec<i32> = extract(&ns, "x['b'].tolist()");
        let c: Vec<u16> = extract(&ns, "x['c'].tolist()");
        let d: Vec<i64> = extract(&ns, "x['d'].tolist()");
        for (i, r) in recs.iter().enumerate() {
            let b_field = r.b;
            assert_eq!(
                (r.a.get(), b_field, r.c.get(), r.d.get()),
                (a[i], b[i], c[i], d[i])
            );
        }

        // the same data read with native f64 for `a`: a byte-order mismatch, not a layout one
        #[derive(Clone, Copy, pybuf::Element)]
        #[repr(C, packed)]
        struct Native {
            a: f64,
            b: i32,
            c: be::U16,
            d: be::I64,
        }
        assert_eq!(
            match_format::<Native>(&x),
            Err(Mismatch::ByteOrder {
                found: Endian::Big,
                expected: Endian::Little
            })
        );
        assert!(matches!(
            Buffer1::<Native>::get(&x),
            Err(Error::ByteOrder { .. })
        ));
    });
}

/// Names opted out: matches whatever names (or none) the format has.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
#[pybuf(ignore_names)]
struct AnyNames {
    first: i32,
    second: f64,
    third: bool,
    fourth: u16,
}

/// A tuple struct: no names.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Tuple(i32, f64, bool, u16);

/// Names given by attribute.
#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Renamed {
    #[pybuf(name = "a")]
    alpha: i32,
    #[pybuf(name = "b")]
    beta: f64,
    c: bool,
    #[pybuf(name = "d")]
    r#delta: u16,
}

#[test]
fn names_ignored_renamed_and_mismatched() {
    Python::attach(|py| {
        let ns = run(
            py,
            &format!("{ABCD}\ndt = np.dtype(fields, align=True)\nx = np.array(vals, dtype=dt)"),
        );
        let x = get(&ns, "x");
        let want = Buffer1::<Aligned>::get(&x).unwrap().to_vec().unwrap();

        assert_eq!(match_format::<AnyNames>(&x), Ok(()));
        let got = Buffer1::<AnyNames>::get(&x).unwrap().to_vec().unwrap();
        assert_eq!(
            got.iter()
                .map(|r| (r.first, r.second, r.third, r.fourth))
                .collect::<Vec<_>>(),
            want.iter()
                .map(|r| (r.a, r.b, r.c, r.d))
                .collect::<Vec<_>>()
        );

        assert_eq!(match_format::<Tuple>(&x), Ok(()));
        let got = Buffer1::<Tuple>::get(&x).unwrap().to_vec().unwrap();
        assert_eq!(
            got.iter().map(|r| (r.0, r.1, r.2, r.3)).collect::<Vec<_>>(),
            want.iter()
                .map(|r| (r.a, r.b, r.c, r.d))
                .collect::<Vec<_>>()
        );

        assert_eq!(match_format::<Renamed>(&x), Ok(()));
        let got = Buffer1::<Renamed>::get(&x).unwrap().to_vec().unwrap();
        assert_eq!(
            got.iter()
                .map(|r| (r.alpha, r.beta, r.c, r.delta))
                .collect::<Vec<_>>(),
            want.iter()
                .map(|r| (r.a, r.b, r.c, r.d))
                .collect::<Vec<_>>()
        );

        // a name mismatch, reported with its position and both names
        #[derive(Clone, Copy, pybuf::Element)]
        #[repr(C)]
        struct WrongName {
            a: i32,
            b: f64,
            flag: bool,
            d: u16,
        }
        assert_eq!(
            match_format::<WrongName>(&x),
            Err(Mismatch::FieldName {
                index: 2,
                expected: "flag".into(),
                found: "c".into(),
            })
        );
        assert!(matches!(
            Buffer1::<WrongName>::get(&x),
            Err(Error::ElementType { .. })
        ));

        // a wrong type (f32 where numpy has i4), and a wrong offset (u16 before bool)
        #[derive(Clone, Copy, pybuf::Element)]
        #[repr(C)]
        struct WrongType {
            a: f32,
            b: f64,
            c: bool,
            d: u16,
        }
        #[derive(Clone, Copy, pybuf::Element)]
        #[repr(C)]
        struct WrongOffset {
            a: i32,
            b: f64,
            d: u16,
            c: bool,
        }
        assert_eq!(match_format::<WrongType>(&x), Err(Mismatch::Layout));
        assert_eq!(match_format::<WrongOffset>(&x), Err(Mismatch::Layout));
        assert!(matches!(
            Buffer1::<WrongType>::get(&x),
            Err(Error::ElementType { .. })
        ));
        assert!(matches!(
            Buffer1::<WrongOffset>::get(&x),
            Err(Error::ElementType { .. })
        ));
    });
}

#[test]
fn bool_field_holding_two_is_invalid() {
    Python::attach(|py| {
        let ns = run(
            py,
            &format!(
                "{ABCD}\ndt = np.dtype(fields, align=True)\nx = np.array(vals, dtype=dt)
x.view('u1').reshape(3, dt.itemsize)[1, dt.fields['c'][1]] = 2
raw = x.tobytes()"
            ),
        );
        // Python agrees the byte is 2 (and numpy itself still calls it True)
        assert_eq!(
            extract::<u8>(&ns, "x.view('u1').reshape(3, -1)[1, dt.fields['c'][1]]"),
            2
        );
        let raw: Vec<u8> = extract(&ns, "raw");
        const { assert!(!Aligned::ALWAYS_VALID) };
        assert!(AnyNames::layout().matches(&Aligned::layout()).is_ok());
        let size = size_of::<Aligned>();
        assert!(Aligned::is_valid(&raw[..size]));
        assert!(!Aligned::is_valid(&raw[size..2 * size]));
        assert_eq!(records_from_bytes::<Aligned>(&raw), Err(1));
        let x = get(&ns, "x");
        match Buffer1::<Aligned>::get(&x).unwrap().to_vec() {
            Err(Error::InvalidValue {
                position, bytes, ..
            }) => {
                assert_eq!(position, 1);
                assert_eq!(bytes, raw[size..2 * size]);
            }
            other => panic!("expected InvalidValue, got {other:?}"),
        }
        // padding bytes are not validated: garbage there is fine
        let ns = run(
            py,
            &format!(
                "{ABCD}\ndt = np.dtype(fields, align=True)\nx = np.array(vals, dtype=dt)
x.view('u1').reshape(3, dt.itemsize)[:, 4:8] = 0xAB
x.view('u1').reshape(3, dt.itemsize)[:, 20:] = 0xCD"
            ),
        );
        let x = get(&ns, "x");
        let recs = Buffer1::<Aligned>::get(&x).unwrap().to_vec().unwrap();
        let a: Vec<i32> = extract(&ns, "x['a'].tolist()");
        assert_eq!(recs.iter().map(|r| r.a).collect::<Vec<_>>(), a);
    });
}

// ---------------------------------------------------------------------------------------------
// ctypes Structure arrays

/// `_fields_ = [('a', c_int), ('b', c_int), ('x', c_double), ('name', c_char * 8)]`: no
/// padding, so every CPython version writes a correct format.
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C)]
struct CRec {
    a: i32,
    b: i32,
    x: f64,
    name: [u8; 8],
}

fn python_at_least(ns: &Bound<'_, PyDict>, minor: u32) -> bool {
    extract(ns, &format!("sys.version_info >= (3, {minor})"))
}

#[test]
fn ctypes_structure_array() {
    Python::attach(|py| {
        let ns = run(
            py,
            "class S(ctypes.Structure):
    _fields_ = [('a', ctypes.c_int), ('b', ctypes.c_int), ('x', ctypes.c_double),
                ('name', ctypes.c_char * 8)]
arr = (S * 3)()
for i, s in enumerate(arr):
    s.a = -i * 1000
    s.b = 2**31 - 1 - i
    s.x = i / 3
    s.name = b'rec%d' % i
names = [s.name.ljust(8, b'\\0') for s in arr]",
        );
        assert_eq!(ctypes_offsets(&ns, "S"), layout_offsets::<CRec>());
        assert_eq!(extract::<usize>(&ns, "ctypes.sizeof(S)"), size_of::<CRec>());
        let arr = get(&ns, "arr");
        assert_eq!(match_format::<CRec>(&arr), Ok(()));
        let recs = Buffer1::<CRec>::get(&arr).unwrap().to_vec().unwrap();
        let a: Vec<i32> = extract(&ns, "[s.a for s in arr]");
        let b: Vec<i32> = extract(&ns, "[s.b for s in arr]");
        let x: Vec<f64> = extract(&ns, "[s.x for s in arr]");
        let names: Vec<Vec<u8>> = extract(&ns, "names");
        assert_eq!(recs.len(), 3);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!((r.a, r.b, r.x), (a[i], b[i], x[i]));
            assert_eq!(r.name.to_vec(), names[i]);
        }
    });
}

/// `[('a', c_int), ('b', c_double), ('c', c_char * 5)]` with C padding (4 bytes after `a`, 3
/// at the end).
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C)]
struct CPadded {
    a: i32,
    b: f64,
    c: [u8; 5],
}

/// The same fields with `_pack_ = 1`.
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C, packed)]
struct CPacked {
    a: i32,
    b: f64,
    c: [u8; 5],
}

/// Reads a ctypes array of `class` whose fields are `a`, `b`, `c` (as in [`CPadded`]).
fn check_abc_values<S: Element>(
    ns: &Bound<'_, PyDict>,
    recs: &[S],
    fields: impl Fn(&S) -> (i32, f64, [u8; 5]),
) {
    let a: Vec<i32> = extract(ns, "[s.a for s in arr]");
    let b: Vec<f64> = extract(ns, "[s.b for s in arr]");
    let c: Vec<Vec<u8>> = extract(ns, "[s.c.ljust(5, b'\\0') for s in arr]");
    assert_eq!(recs.len(), a.len());
    for (i, r) in recs.iter().enumerate() {
        let (ra, rb, rc) = fields(r);
        assert_eq!((ra, rb), (a[i], b[i]));
        assert_eq!(rc.to_vec(), c[i]);
    }
}

const ABC_FILL: &str = "arr = (S * 4)()
for i, s in enumerate(arr):
    s.a = 7 - 3 * i
    s.b = -i * 0.125
    s.c = b'xy%d' % i
raw = bytes(arr)";

#[test]
fn ctypes_padded_and_packed_structures() {
    Python::attach(|py| {
        for (pack, class_line) in [(false, ""), (true, "    _pack_ = 1\n")] {
            let ns = run(
                py,
                &format!(
                    "class S(ctypes.Structure):
{class_line}    _fields_ = [('a', ctypes.c_int), ('b', ctypes.c_double), ('c', ctypes.c_char * 5)]
{ABC_FILL}"
                ),
            );
            let raw: Vec<u8> = extract(&ns, "raw");
            let arr = get(&ns, "arr");
            let (format, itemsize) = format_of(&arr);
            if pack {
                assert_eq!(ctypes_offsets(&ns, "S"), layout_offsets::<CPacked>());
                assert_eq!(itemsize, size_of::<CPacked>());
                let recs = records_from_bytes::<CPacked>(&raw).unwrap();
                check_abc_values(&ns, &recs, |r| (r.a, r.b, r.c));
            } else {
                assert_eq!(ctypes_offsets(&ns, "S"), layout_offsets::<CPadded>());
                assert_eq!(itemsize, size_of::<CPadded>());
                let recs = records_from_bytes::<CPadded>(&raw).unwrap();
                check_abc_values(&ns, &recs, |r| (r.a, r.b, r.c));
            }
            if python_at_least(&ns, 12) {
                // CPython 3.12+ writes the padding ('T{<i:a:4x<d:b:(5)<c:c:3x}') and packed
                // structures as 'T{<i:a:<d:b:(5)<c:c:}'
                if pack {
                    assert_eq!(match_format::<CPacked>(&arr), Ok(()), "{format}");
                    let recs = Buffer1::<CPacked>::get(&arr).unwrap().to_vec().unwrap();
                    check_abc_values(&ns, &recs, |r| (r.a, r.b, r.c));
                } else {
                    assert_eq!(match_format::<CPadded>(&arr), Ok(()), "{format}");
                    let recs = Buffer1::<CPadded>::get(&arr).unwrap().to_vec().unwrap();
                    check_abc_values(&ns, &recs, |r| (r.a, r.b, r.c));
                }
            } else {
                // CPython 3.11 and older describe a padded ctypes Structure without its
                // padding ('T{<i:a:<d:b:(5)<c:c:}' for 24-byte items) and a packed one as
                // 'B': the format disagrees with itemsize, and pybuf refuses it
                let parsed = parse(&format).unwrap();
                assert_ne!(parsed.size, itemsize, "{format}");
                if pack {
                    assert!(Buffer1::<CPacked>::get(&arr).is_err());
                } else {
                    assert!(Buffer1::<CPadded>::get(&arr).is_err());
                }
            }
        }
    });
}

/// `BigEndianStructure` with `[('a', c_double), ('b', c_int), ('c', c_short), ('d',
/// c_ushort)]` (no padding, alignment 1 on the Rust side).
#[derive(Clone, Copy, Debug, pybuf::Element)]
#[repr(C)]
struct BigRec {
    a: be::F64,
    b: be::I32,
    c: be::I16,
    d: be::U16,
}

#[test]
fn ctypes_big_endian_structure() {
    Python::attach(|py| {
        let ns = run(
            py,
            "class S(ctypes.BigEndianStructure):
    _fields_ = [('a', ctypes.c_double), ('b', ctypes.c_int), ('c', ctypes.c_short),
                ('d', ctypes.c_ushort)]
arr = (S * 3)()
for i, s in enumerate(arr):
    s.a = 1.5 ** i - 10
    s.b = -(2**31) + i
    s.c = -i - 1
    s.d = 65535 - i",
        );
        assert_eq!(ctypes_offsets(&ns, "S"), layout_offsets::<BigRec>());
        let arr = get(&ns, "arr");
        assert_eq!(match_format::<BigRec>(&arr), Ok(()));
        let recs = Buffer1::<BigRec>::get(&arr).unwrap().to_vec().unwrap();
        let a: Vec<f64> = extract(&ns, "[s.a for s in arr]");
        let b: Vec<i32> = extract(&ns, "[s.b for s in arr]");
        let c: Vec<i16> = extract(&ns, "[s.c for s in arr]");
        let d: Vec<u16> = extract(&ns, "[s.d for s in arr]");
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                (r.a.get(), r.b.get(), r.c.get(), r.d.get()),
                (a[i], b[i], c[i], d[i])
            );
        }
        // read as native integers: a byte-order mismatch
        #[derive(Clone, Copy, pybuf::Element)]
        #[repr(C, packed)]
        struct NativeRec {
            a: be::F64,
            b: i32,
            c: be::I16,
            d: be::U16,
        }
        assert!(matches!(
            match_format::<NativeRec>(&arr),
            Err(Mismatch::ByteOrder { .. })
        ));
    });
}

// ---------------------------------------------------------------------------------------------
// generic records and layout facts

#[derive(Clone, Copy, Debug, PartialEq, pybuf::Element)]
#[repr(C)]
struct Pair<T: Copy, const N: usize> {
    key: u16,
    values: [T; N],
}

#[test]
fn generic_records_follow_their_parameters() {
    Python::attach(|py| {
        let ns = run(
            py,
            "dt = np.dtype([('key','u2'),('values','f8',(3,))], align=True)
x = np.array([(1, (0.5, 1.5, 2.5)), (65535, (-1, -2, -3))], dtype=dt)
y = np.array([(2, (7, 8)), (3, (9, 10))], dtype=np.dtype([('key','u2'),('values','i1',(2,))]))",
        );
        let x = get(&ns, "x");
        let y = get(&ns, "y");
        assert_eq!(match_format::<Pair<f64, 3>>(&x), Ok(()));
        assert_eq!(match_format::<Pair<i8, 2>>(&y), Ok(()));
        assert_eq!(match_format::<Pair<f64, 2>>(&x), Err(Mismatch::Layout));
        let xs = Buffer1::<Pair<f64, 3>>::get(&x).unwrap().to_vec().unwrap();
        let ys = Buffer1::<Pair<i8, 2>>::get(&y).unwrap().to_vec().unwrap();
        let xv: Vec<(u16, [f64; 3])> = extract(&ns, "x.tolist()");
        let yv: Vec<(u16, [i8; 2])> = extract(&ns, "y.tolist()");
        assert_eq!(xs.iter().map(|r| (r.key, r.values)).collect::<Vec<_>>(), xv);
        assert_eq!(ys.iter().map(|r| (r.key, r.values)).collect::<Vec<_>>(), yv);
    });
}

#[test]
fn layout_is_the_structs_own() {
    fn check<S: Element>() {
        let l = S::layout();
        assert_eq!(l.size, size_of::<S>(), "{}", S::type_name());
        assert_eq!(l.align, align_of::<S>(), "{}", S::type_name());
        // cached layouts are equal on every call
        assert_eq!(l, S::layout());
    }
    check::<Aligned>();
    check::<Packed>();
    check::<Outer>();
    check::<Swapped>();
    check::<CPacked>();
    check::<BigRec>();
    check::<Pair<f32, 5>>();
    check::<[Inner; 3]>();
    const { assert!(Swapped::ALWAYS_VALID && CRec::ALWAYS_VALID && Pair::<u8, 1>::ALWAYS_VALID) };
    const { assert!(!Outer::ALWAYS_VALID && !Pair::<bool, 1>::ALWAYS_VALID) };
    assert_eq!(Inner::type_name(), "Inner");
}

// ---------------------------------------------------------------------------------------------
// property: random records written by numpy read back equal

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_aligned_records_round_trip(
        rows in proptest::collection::vec(
            (any::<i32>(), any::<f64>().prop_filter("finite", |f| f.is_finite()), any::<bool>(), any::<u16>()),
            0..20,
        ),
        aligned in any::<bool>(),
    ) {
        Python::attach(|py| {
            let ns = PyDict::new(py);
            ns.set_item("rows", rows.clone()).unwrap();
            ns.set_item("aligned", aligned).unwrap();
            let code = CString::new(
                "import numpy as np
x = np.array(rows, dtype=np.dtype([('a','i4'),('b','f8'),('c','?'),('d','u2')], align=aligned))",
            )
            .unwrap();
            py.run(&code, Some(&ns), None).unwrap();
            let x = get(&ns, "x");
            let back: Vec<(i32, f64, bool, u16)> = extract(&ns, "x.tolist()");
            let got: Vec<(i32, u64, bool, u16)> = if aligned {
                Buffer1::<Aligned>::get(&x).unwrap().to_vec().unwrap()
                    .iter().map(|r| (r.a, r.b.to_bits(), r.c, r.d)).collect()
            } else {
                Buffer1::<Packed>::get(&x).unwrap().to_vec().unwrap()
                    .iter().map(|r| (r.a, r.b.to_bits(), r.c, r.d)).collect()
            };
            let want: Vec<(i32, u64, bool, u16)> =
                back.iter().map(|&(a, b, c, d)| (a, b.to_bits(), c, d)).collect();
            prop_assert_eq!(got, want);
            Ok(())
        })?;
    }
}
