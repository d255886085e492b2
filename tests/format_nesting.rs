//! Deeply nested formats (64 levels of `T{...}`, the most the parser accepts) are matched in
//! time proportional to their size. Before, each level of an unnamed one-field `T{}` cost
//! three times the level below: `"T{"×64 + "B" + "}"×64` never finished (depth 20 took 69 s
//! in a release build). No timing is asserted: these tests complete, which they did not.
//!
//! The formats come from a real exporter: pybuf's own export of a `Vec` whose element type
//! describes itself with the nested layout, read back through `memoryview`.

use ndarray::IxDyn;
use pybuf::format::{parse, Field, ItemKind, ItemLayout, Scalar, ScalarKind, MAX_NESTING};
use pybuf::{AnyBuffer, Buffer1, BufferD, Element, Error};
use pyo3::prelude::*;

/// How each level wraps the one below.
#[derive(Clone, Copy)]
enum Wrap {
    /// `T{...}`, one unnamed field.
    Unnamed,
    /// `T{...:a:}`, one named field.
    Named,
    /// `T{(k)...}`: one unnamed field that is a sub-array (k = 2 on every 8th level, else 1).
    SubArray,
}

fn nest(depth: usize, wrap: Wrap) -> ItemLayout {
    let mut item = ItemLayout::scalar(Scalar::native(ScalarKind::U8), 1);
    for level in 0..depth {
        let (name, layout) = match wrap {
            Wrap::Unnamed => (None, item),
            Wrap::Named => (Some("a".to_string()), item),
            Wrap::SubArray => (
                None,
                ItemLayout::array(vec![1 + usize::from(level % 8 == 0)], item),
            ),
        };
        item = ItemLayout {
            size: layout.size,
            align: 1,
            kind: ItemKind::Struct(vec![Field {
                name,
                offset: 0,
                layout,
            }]),
        };
    }
    item
}

/// One byte described as 64 unnamed one-field structs.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
struct DeepUnnamed(u8);

// SAFETY: one `u8` (size 1, align 1, no padding, every bit pattern valid), which the nest of
// one-field structs at offset 0 describes.
unsafe impl Element for DeepUnnamed {
    const HAS_PADDING: bool = false;

    fn layout() -> ItemLayout {
        nest(MAX_NESTING, Wrap::Unnamed)
    }
}

/// The same with every field named `a`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
struct DeepNamed(u8);

// SAFETY: as for `DeepUnnamed`.
unsafe impl Element for DeepNamed {
    const HAS_PADDING: bool = false;

    fn layout() -> ItemLayout {
        nest(MAX_NESTING, Wrap::Named)
    }
}

/// 256 bytes: 64 levels of one-field structs around sub-arrays, 8 of them of 2 items.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
struct DeepArrays([u8; 256]);

// SAFETY: 256 `u8` (align 1, no padding), which the nest of sub-arrays (2^8 bytes) describes.
unsafe impl Element for DeepArrays {
    const HAS_PADDING: bool = false;

    fn layout() -> ItemLayout {
        nest(MAX_NESTING, Wrap::SubArray)
    }
}

fn deep_format() -> String {
    format!("{}B{}", "T{".repeat(MAX_NESTING), "}".repeat(MAX_NESTING))
}

fn memoryview<'py>(x: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    let py = x.py();
    py.import("builtins")
        .unwrap()
        .getattr("memoryview")
        .unwrap()
        .call1((x,))
        .unwrap()
}

#[test]
fn deep_unnamed_nest_from_an_exporter_reads_as_u8() {
    Python::attach(|py| {
        let x = pybuf::export::from_vec(py, (0..5u8).map(DeepUnnamed).collect()).unwrap();
        let mv = memoryview(x.bind(py).as_any());
        let format: String = mv.getattr("format").unwrap().extract().unwrap();
        assert_eq!(format, deep_format());

        let bytes = BufferD::<u8>::get(&mv).unwrap();
        assert_eq!(bytes.to_vec().unwrap(), [0, 1, 2, 3, 4]);
        let any = AnyBuffer::get(&mv).unwrap();
        let typed = any.typed::<u8, IxDyn>().unwrap();
        assert_eq!(typed.len(), 5);
        let own = Buffer1::<DeepUnnamed>::get(&mv).unwrap();
        assert_eq!(own.item(3).unwrap(), DeepUnnamed(3));
        assert!(matches!(
            BufferD::<i8>::get(&mv),
            Err(Error::ElementType { .. })
        ));
    });
}

#[test]
fn deep_named_nest_and_sub_array_nest_match_themselves() {
    Python::attach(|py| {
        let named = pybuf::export::from_vec(py, vec![DeepNamed(7); 3]).unwrap();
        let mv = memoryview(named.bind(py).as_any());
        assert_eq!(
            Buffer1::<DeepNamed>::get(&mv).unwrap().to_vec().unwrap()[2],
            DeepNamed(7)
        );
        // named fields are a record, not a byte
        assert!(matches!(
            BufferD::<u8>::get(&mv),
            Err(Error::ElementType { .. })
        ));

        let arrays = pybuf::export::from_vec(py, vec![DeepArrays([9; 256]); 2]).unwrap();
        let mv = memoryview(arrays.bind(py).as_any());
        let itemsize: usize = mv.getattr("itemsize").unwrap().extract().unwrap();
        assert_eq!(itemsize, 256);
        let own = Buffer1::<DeepArrays>::get(&mv).unwrap();
        assert_eq!(own.item(1).unwrap(), DeepArrays([9; 256]));
        // a sub-array count does not multiply through a struct: (2)T{(2)B} is not 4B
        assert!(matches!(
            Buffer1::<[u8; 256]>::get(&mv),
            Err(Error::ElementType { .. })
        ));
    });
}

#[test]
fn deep_formats_parse_and_match() {
    let byte = parse("B").unwrap();
    for depth in [20, MAX_NESTING] {
        let unnamed = format!("{}B{}", "T{".repeat(depth), "}".repeat(depth));
        let item = parse(&unnamed).unwrap();
        assert_eq!(item, nest(depth, Wrap::Unnamed));
        assert_eq!(item.matches(&byte), Ok(()));
        assert_eq!(item.matches_scalar(Scalar::native(ScalarKind::U8)), Ok(()));
        assert_eq!(byte.matches(&item), Ok(()));
        assert_eq!(item.describe().matches("struct").count(), depth);
    }
    let arrays = nest(MAX_NESTING, Wrap::SubArray);
    let again = parse(&arrays.to_format()).unwrap();
    assert_eq!(again.matches(&arrays), Ok(()));
    assert_eq!(arrays.matches(&again), Ok(()));
}
