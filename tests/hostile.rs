//! Hostile exporters (issue 17): `hostile.Exporter`, a Python type whose raw `bf_getbuffer`
//! fills `Py_buffer` with adversarial values (`tests/hostile_exporter`), one case per test.
//! Every case acquires through several `Buffer<T, D>` types, `get_mut` and `AnyBuffer`, then
//! exercises `shape()`, `len()`, `format()`, `Debug`, `to_vec()`, `read()`, `item()` and the
//! writes where acquisition succeeded (`tests/hostile_harness`). The outcome must be a clear
//! error (the named `pybuf::Error` variant, with a message that says what the exporter
//! actually sent) or the values Python's own `memoryview` reports; never a panic, and clean
//! under valgrind. Each case collects all its failures and reports them together, and ends by
//! checking that every successful `getbuffer` was released exactly once and no failed one
//! ever (after `pybuf::flush_releases`).
//!
//! Formats that could make pybuf run for ever run in a child process with a time limit, so a
//! hang fails that test instead of the whole suite. The read-only-name regression of issue 12
//! (finding 1) is at the end: a Python thread renames a numpy subclass while Rust builds
//! `ReadOnly` errors.

mod common;
mod hostile_exporter;
mod hostile_harness;
mod rename_storm;

use hostile_exporter::{Answer, Buf, Obj, Spec};
use hostile_harness::*;
use ndarray::{Ix1, Ix2, IxDyn};
use pybuf::{AnyBuffer, Buffer};
use pyo3::prelude::*;

// ---------------------------------------------------------------------------------------------
// Legal layouts: Python's values

#[test]
fn legal_bytes_1d() {
    run_case("legal_bytes_1d", Spec::bytes_1d(), |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(Want::Ok);
        c.get::<u8, Ix2>(err(DIMENSIONS).has("expected a 2-D").has("1-D").has("(6,)"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE).has("'B'").has("u16"));
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
        c.any_mut(Want::Ok);
        c.drop_on_another_thread();
    });
}

/// `H` items, every other one of a 2×6 block (byte strides 12 and 4).
fn u16_2d_strided() -> Spec {
    Spec {
        data: (0..24).collect(),
        len: 12,
        itemsize: 2,
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![12, 4]),
        ..Spec::bytes_1d().format("H")
    }
}

#[test]
fn legal_u16_2d_strided() {
    run_case("legal_u16_2d_strided", u16_2d_strided(), |c| {
        c.get::<u16, Ix2>(Want::Ok);
        c.get::<u16, IxDyn>(Want::Ok);
        c.get::<u16, Ix1>(err(DIMENSIONS).has("2-D").has("(2, 3)"));
        c.get::<u8, IxDyn>(err(ELEMENT_TYPE).has("'H'"));
        c.get_mut::<u16, Ix2>(Want::Ok);
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

#[test]
fn null_format_means_bytes() {
    let spec = Spec {
        format: None,
        ..Spec::bytes_1d()
    };
    run_case("null_format_means_bytes", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn null_shape_1d_is_len_over_itemsize() {
    let spec = Spec {
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("null_shape_1d", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn null_strides_2d_are_c_order() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("null_strides_2d", spec, |c| {
        c.get::<u8, Ix2>(Want::Ok);
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix2>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn ndim_64_is_legal() {
    let mut shape = vec![1; 64];
    shape[0] = 6;
    let spec = Spec {
        ndim: 64,
        shape: Some(shape),
        strides: Some(vec![1; 64]),
        ..Spec::bytes_1d()
    };
    run_case("ndim_64", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(err(DIMENSIONS).has("64-D"));
        c.get::<u8, Ix2>(err(DIMENSIONS).has("64-D"));
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn ndim_0_scalar() {
    let spec = Spec {
        data: vec![42],
        len: 1,
        ndim: 0,
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("ndim_0_scalar", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(Want::Ok); // a scalar reads as one item
        c.get::<u8, Ix2>(err(DIMENSIONS).has("0-D"));
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn null_buf_with_no_items() {
    let spec = Spec {
        buf: Buf::Null,
        len: 0,
        shape: Some(vec![0]),
        ..Spec::bytes_1d()
    };
    run_case("null_buf_empty", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn stride_isize_max_on_a_single_item() {
    let spec = Spec {
        len: 1,
        shape: Some(vec![1]),
        strides: Some(vec![isize::MAX]),
        ..Spec::bytes_1d()
    };
    run_case("stride_isize_max_single_item", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn backward_strides_from_the_end() {
    let spec = Spec {
        buf: Buf::At(5),
        strides: Some(vec![-1]),
        ..Spec::bytes_1d()
    };
    run_case("backward_strides_from_the_end", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

/// `buf` at the start of the data and stride -1: the items are the bytes *before* `buf` (the
/// exporter's guard bytes here). pybuf must walk down from `buf`, as Python does.
#[test]
fn backward_strides_from_the_start() {
    let spec = Spec {
        buf: Buf::At(0),
        strides: Some(vec![-1]),
        ..Spec::bytes_1d()
    };
    run_case("backward_strides_from_the_start", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn zero_strides() {
    let spec = Spec {
        len: 4,
        shape: Some(vec![4]),
        strides: Some(vec![0]),
        ..Spec::bytes_1d()
    };
    run_case("zero_strides", spec, |c| {
        c.write = err(SELF_OVERLAPPING);
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn stride_not_a_multiple_of_the_itemsize() {
    let spec = Spec {
        data: (0..8).collect(),
        itemsize: 2,
        shape: Some(vec![3]),
        strides: Some(vec![3]),
        ..Spec::bytes_1d().format("H")
    };
    run_case("stride_not_multiple", spec, |c| {
        c.view = err(STRIDE_NOT_MULTIPLE).has("3");
        c.write = c.view.clone();
        c.get::<u16, Ix1>(Want::Ok);
        c.get_mut::<u16, IxDyn>(Want::Ok);
        c.get::<u8, Ix1>(err(ELEMENT_TYPE));
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

#[test]
fn misaligned_u16() {
    let spec = Spec {
        data: (0..8).collect(),
        buf: Buf::At(1),
        itemsize: 2,
        shape: Some(vec![3]),
        strides: Some(vec![2]),
        ..Spec::bytes_1d().format("H")
    };
    run_case("misaligned_u16", spec, |c| {
        c.view = err(MISALIGNED);
        c.write = c.view.clone();
        c.get::<u16, Ix1>(Want::Ok);
        c.get_mut::<u16, IxDyn>(Want::Ok);
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

#[test]
fn suboffsets_all_negative_mean_direct() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![3, 1]),
        suboffsets: Some(vec![-1, -1]),
        ..Spec::bytes_1d()
    };
    run_case("suboffsets_all_negative", spec, |c| {
        c.get::<u8, Ix2>(Want::Ok);
        c.get_mut::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

/// PIL-style rows through a pointer table, in swapped order.
#[test]
fn suboffsets_pointer_table() {
    let spec = Spec {
        buf: Buf::Table(vec![Some(3), Some(0)]),
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![std::mem::size_of::<usize>() as isize, 1]),
        suboffsets: Some(vec![0, -1]),
        ..Spec::bytes_1d()
    };
    run_case("suboffsets_pointer_table", spec, |c| {
        c.view = err(SUBOFFSETS);
        c.write = c.view.clone();
        c.get::<u8, Ix2>(Want::Ok);
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix2>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

/// A pointer table of NULL rows. What the pointers point to is the exporter's promise (no
/// reader can check it), so only what does not follow them is exercised: acquisition,
/// `shape()`, `format()`, `Debug` and the refusal of views.
#[test]
fn suboffsets_with_null_row_pointers() {
    let spec = Spec {
        buf: Buf::Table(vec![None, None]),
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![std::mem::size_of::<usize>() as isize, 1]),
        suboffsets: Some(vec![0, -1]),
        ..Spec::bytes_1d()
    };
    run_case("suboffsets_null_rows", spec, |c| {
        c.touch_data = false;
        c.view = err(SUBOFFSETS);
        c.get::<u8, Ix2>(Want::Ok);
        c.get::<u8, IxDyn>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
    });
}

#[test]
fn zero_size_items() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        ndim: 2,
        shape: Some(vec![2, 3]),
        strides: Some(vec![0, 0]),
        ..Spec::bytes_1d().format("0B")
    };
    run_case("zero_size_items", spec, |c| {
        c.get::<[u8; 0], IxDyn>(Want::Ok);
        c.get::<[u8; 0], Ix2>(Want::Ok);
        c.get::<u8, Ix2>(err(ELEMENT_TYPE));
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

/// Finding 5a: items that are arrays of zero-sized `bool` arrays (numpy's
/// `np.dtype(('?', (2, 0)))`): copies validate items of zero bytes without panicking.
#[test]
fn zero_size_bool_arrays() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        shape: Some(vec![3]),
        strides: Some(vec![0]),
        ..Spec::bytes_1d().format("(2,0)?")
    };
    run_case("zero_size_bool_arrays", spec, |c| {
        c.get::<[[bool; 0]; 2], Ix1>(Want::Ok);
        c.get::<[[bool; 0]; 2], IxDyn>(Want::Ok);
        c.get::<[bool; 0], Ix1>(err(ELEMENT_TYPE).or_ok()); // no bytes either way
        c.any(Want::Ok, err(ELEMENT_TYPE));
    });
}

/// The exporter leaves `obj` NULL: the buffer still works, `obj()` is None, and (CPython's
/// rule) `bf_releasebuffer` is never called for it.
#[test]
fn null_obj() {
    let spec = Spec {
        obj: Obj::Null,
        ..Spec::bytes_1d()
    };
    run_case("null_obj", spec, |c| {
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, Ix1>(Want::Ok);
        c.any(Want::Ok, Want::Ok);
        match attempt(|| Buffer::<u8, Ix1>::get(&c.ex.obj).map(|b| b.obj(c.py).is_none())) {
            Ok(Ok(true)) => {}
            other => c.fail("obj()", format!("expected Python None, got {other:?}")),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Impossible layouts: a clear error that says what the exporter sent

/// Every acquisition of `u8` items fails with `want`, whatever the dimension type.
fn all_u8_fail(c: &mut Case<'_>, want: Want) {
    c.get::<u8, IxDyn>(want.clone());
    c.get::<u8, Ix1>(want.clone());
    c.get_mut::<u8, IxDyn>(want.clone());
    c.any(want.clone(), Want::Ok);
    c.any_mut(want);
}

#[test]
fn null_buf_with_items() {
    let spec = Spec {
        buf: Buf::Null,
        ..Spec::bytes_1d()
    };
    run_case("null_buf_with_items", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("NULL").has("6"));
        c.get::<u8, Ix2>(err(DIMENSIONS_OR_LAYOUT).has("1-D"));
    });
}

#[test]
fn len_larger_than_shape_times_itemsize() {
    let spec = Spec {
        len: 100,
        ..Spec::bytes_1d()
    };
    run_case("len_too_large", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("100").has("6"));
    });
}

#[test]
fn len_smaller_than_shape_times_itemsize() {
    let spec = Spec {
        len: 3,
        ..Spec::bytes_1d()
    };
    run_case("len_too_small", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("3").has("6"));
    });
}

#[test]
fn len_negative() {
    let spec = Spec {
        len: -1,
        ..Spec::bytes_1d()
    };
    run_case("len_negative", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("-1"));
    });
}

#[test]
fn ndim_0_with_wrong_len() {
    let spec = Spec {
        data: vec![1, 2, 3, 4],
        len: 4,
        ndim: 0,
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    run_case("ndim_0_wrong_len", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("4"));
    });
}

/// Finding 6: 65 dimensions must be reported as 65, never as "a 0-D buffer ... shape ()".
#[test]
fn ndim_65() {
    let mut shape = vec![1; 65];
    shape[0] = 6;
    let spec = Spec {
        ndim: 65,
        shape: Some(shape),
        strides: Some(vec![1; 65]),
        ..Spec::bytes_1d()
    };
    const SAYS_65: &[&str] = &["65-D", "65 dimensions"];
    run_case("ndim_65", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_65));
        c.get_mut::<u8, IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_65));
        let dims = err(DIMENSIONS_OR_LAYOUT)
            .has_any(SAYS_65)
            .lacks("0-D")
            .lacks("()");
        c.get::<u8, Ix1>(dims.clone());
        c.get::<u8, Ix2>(dims);
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has_any(SAYS_65).lacks("0-D"));
        c.any(err(INVALID_LAYOUT).has_any(SAYS_65), Want::Ok);
    });
}

/// Finding 6: ndim -1 is reported as -1.
#[test]
fn ndim_negative() {
    let spec = Spec {
        ndim: -1,
        ..Spec::bytes_1d()
    };
    run_case("ndim_negative", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("-1"));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has("-1").lacks("0-D"));
        c.get::<u8, Ix2>(err(DIMENSIONS_OR_LAYOUT).has("-1").lacks("0-D"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has("-1").lacks("0-D"));
        c.any(err(INVALID_LAYOUT).has("-1"), Want::Ok);
    });
}

/// Finding 6: shape NULL with ndim 2 is a 2-D buffer without a shape, not "0-D ... ()".
#[test]
fn null_shape_with_ndim_2() {
    let spec = Spec {
        ndim: 2,
        shape: None,
        strides: None,
        ..Spec::bytes_1d()
    };
    const SAYS_2: &[&str] = &["2-D", "2 dimensions"];
    run_case("null_shape_ndim_2", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_2));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has_any(SAYS_2));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has_any(SAYS_2).lacks("0-D"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has_any(SAYS_2).lacks("0-D"));
        c.any(err(INVALID_LAYOUT).has_any(SAYS_2), Want::Ok);
    });
}

/// Finding 6: a negative shape entry is shown as the negative number, never as 0.
#[test]
fn shape_negative() {
    let spec = Spec {
        len: 3,
        shape: Some(vec![-3]),
        ..Spec::bytes_1d()
    };
    run_case("shape_negative", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("-3"));
        c.get::<u8, Ix2>(err(DIMENSIONS_OR_LAYOUT).has("-3"));
        c.get::<u16, IxDyn>(err(ELEMENT_TYPE_OR_LAYOUT).has("-3"));
    });
}

#[test]
fn shape_negative_2d() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![2, -3]),
        strides: Some(vec![3, 1]),
        ..Spec::bytes_1d()
    };
    run_case("shape_negative_2d", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("-3"));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has("-3"));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has("-3"));
        c.get::<u16, Ix2>(err(ELEMENT_TYPE_OR_LAYOUT).has("-3"));
        c.any(err(INVALID_LAYOUT).has("-3"), Want::Ok);
    });
}

#[test]
fn shape_product_overflows() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![1 << 62, 4]),
        strides: Some(vec![4, 1]),
        ..Spec::bytes_1d()
    };
    run_case("shape_product_overflows", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("4611686018427387904"));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has("4611686018427387904"));
        c.get::<u8, Ix1>(err(DIMENSIONS_OR_LAYOUT).has("4611686018427387904"));
        c.any(err(INVALID_LAYOUT).has("4611686018427387904"), Want::Ok);
    });
}

#[test]
fn shape_isize_max() {
    let spec = Spec {
        ndim: 2,
        shape: Some(vec![isize::MAX, 2]),
        strides: Some(vec![2, 1]),
        ..Spec::bytes_1d()
    };
    run_case("shape_isize_max", spec, |c| {
        c.get::<u8, IxDyn>(err(INVALID_LAYOUT).has("9223372036854775807"));
        c.get::<u8, Ix2>(err(INVALID_LAYOUT).has("9223372036854775807"));
        c.any(err(INVALID_LAYOUT).has("9223372036854775807"), Want::Ok);
    });
}

#[test]
fn stride_isize_max() {
    let spec = Spec {
        len: 2,
        shape: Some(vec![2]),
        strides: Some(vec![isize::MAX]),
        ..Spec::bytes_1d()
    };
    run_case("stride_isize_max", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("9223372036854775807"));
    });
}

#[test]
fn stride_isize_min() {
    let spec = Spec {
        len: 2,
        shape: Some(vec![2]),
        strides: Some(vec![isize::MIN]),
        ..Spec::bytes_1d()
    };
    run_case("stride_isize_min", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("-9223372036854775808"));
    });
}

#[test]
fn shape_times_stride_overflows() {
    let spec = Spec {
        len: 3,
        shape: Some(vec![3]),
        strides: Some(vec![1 << 62]),
        ..Spec::bytes_1d()
    };
    run_case("shape_times_stride_overflows", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("4611686018427387904"));
    });
}

/// Backward strides from a tiny address: the items would lie below address 0.
#[test]
fn backward_strides_wrap_below_zero() {
    let spec = Spec {
        buf: Buf::Address(16),
        len: 2,
        shape: Some(vec![2]),
        strides: Some(vec![-32]),
        ..Spec::bytes_1d()
    };
    run_case("backward_strides_wrap", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("wrap"));
    });
}

#[test]
fn forward_strides_wrap_above_the_top() {
    let spec = Spec {
        buf: Buf::Address(usize::MAX - 15),
        len: 4,
        shape: Some(vec![4]),
        strides: Some(vec![8]),
        ..Spec::bytes_1d()
    };
    run_case("forward_strides_wrap", spec, |c| {
        all_u8_fail(c, err(INVALID_LAYOUT).has("wrap"));
    });
}

/// Finding 4: zero-sized items (`0B`, itemsize 0) in a shape of more than `isize::MAX` items.
#[test]
fn zero_size_items_beyond_isize_max() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        ndim: 2,
        shape: Some(vec![1 << 62, 3]),
        strides: Some(vec![0, 0]),
        ..Spec::bytes_1d().format("0B")
    };
    const SAYS_COUNT: &[&str] = &["4611686018427387904", "13835058055282163712"];
    run_case("zero_size_items_beyond_isize_max", spec, |c| {
        c.get::<[u8; 0], IxDyn>(err(INVALID_LAYOUT).has_any(SAYS_COUNT));
        c.get::<[u8; 0], Ix2>(err(INVALID_LAYOUT).has_any(SAYS_COUNT));
        c.get::<u8, Ix2>(err(ELEMENT_TYPE_OR_LAYOUT).has_any(SAYS_COUNT));
        c.any(err(INVALID_LAYOUT).has_any(SAYS_COUNT), Want::Ok);
    });
}

// ---------------------------------------------------------------------------------------------
// Item sizes and formats

#[test]
fn itemsize_zero_with_format_b() {
    let spec = Spec {
        len: 0,
        itemsize: 0,
        ..Spec::bytes_1d()
    };
    run_case("itemsize_zero", spec, |c| {
        c.item_layout = err(ITEM_SIZE);
        c.get::<u8, IxDyn>(err(ITEM_SIZE).has("'B'").has("itemsize 0"));
        c.get::<u8, Ix1>(err(ITEM_SIZE).has("'B'").has("itemsize 0"));
        c.any(Want::Ok, err(ITEM_SIZE).has("itemsize 0"));
    });
}

#[test]
fn itemsize_negative() {
    let spec = Spec {
        itemsize: -1,
        ..Spec::bytes_1d()
    };
    run_case("itemsize_negative", spec, |c| {
        c.get::<u8, IxDyn>(err(ITEM_SIZE_OR_LAYOUT).has("-1"));
        c.get::<u8, Ix1>(err(ITEM_SIZE_OR_LAYOUT).has("-1"));
        c.get_mut::<u8, IxDyn>(err(ITEM_SIZE_OR_LAYOUT).has("-1"));
        c.any(err(INVALID_LAYOUT).has("-1"), Want::Ok);
    });
}

#[test]
fn itemsize_disagrees_with_the_format() {
    let spec = Spec {
        data: (0..12).collect(),
        len: 12,
        itemsize: 2,
        strides: Some(vec![2]),
        ..Spec::bytes_1d().format("i")
    };
    run_case("itemsize_mismatch", spec, |c| {
        c.item_layout = err(ITEM_SIZE);
        c.get::<i32, Ix1>(err(ITEM_SIZE).has("'i'").has("4").has("itemsize 2"));
        c.get::<i32, IxDyn>(err(ITEM_SIZE).has("'i'").has("itemsize 2"));
        c.get::<u16, Ix1>(err(ELEMENT_TYPE).has("'i'"));
        c.any(Want::Ok, err(&["ItemSize", "ElementType"]));
    });
}

#[test]
fn itemsize_larger_than_a_scalar_format() {
    let spec = Spec {
        data: (0..24).collect(),
        len: 24,
        itemsize: 4,
        strides: Some(vec![4]),
        ..Spec::bytes_1d()
    };
    run_case("itemsize_larger", spec, |c| {
        c.item_layout = err(ITEM_SIZE);
        c.get::<u8, Ix1>(err(ITEM_SIZE).has("'B'").has("itemsize 4"));
        c.get::<u32, Ix1>(err(ELEMENT_TYPE).has("'B'"));
        c.any(Want::Ok, err(ITEM_SIZE));
    });
}

/// A format pybuf cannot parse: every typed acquisition fails with `want`; `AnyBuffer` still
/// acquires, shows the format and reports the parse error from `item_layout()`/`typed()`.
fn bad_format(name: &'static str, format: &[u8], want: Want) {
    let spec = Spec {
        format: Some(format.to_vec()),
        ..Spec::bytes_1d()
    };
    run_case(name, spec, |c| {
        c.item_layout = want.clone();
        c.get::<u8, IxDyn>(want.clone());
        c.get::<u8, Ix1>(want.clone());
        c.get_mut::<u8, Ix1>(want.clone());
        c.any(Want::Ok, want);
    });
}

#[test]
fn format_non_ascii() {
    bad_format("format_non_ascii", "é".as_bytes(), err(FORMAT).has("é"));
}

#[test]
fn format_non_utf8() {
    bad_format(
        "format_non_utf8",
        b"\xffB",
        err(FORMAT).has_any(&["\u{fffd}", "xff", "0xff", "255"]),
    );
}

#[test]
fn format_unbalanced() {
    let mut failures = Vec::new();
    for format in ["T{B", "T{B}}", "B}", "(2B", "(2)B)", "T{B:a", "T{(2}B"] {
        if let Err(p) = attempt(|| {
            bad_format(
                "format_unbalanced",
                format.as_bytes(),
                err(FORMAT).has(format),
            )
        }) {
            failures.push(format!("{format:?}: {p}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn format_huge_repeat_counts() {
    let mut failures = Vec::new();
    for format in [
        "99999999999999999999B",
        "9223372036854775807B",
        "9223372036854775808B",
        "(4294967296,4294967296)B",
        "1000000000000000000x",
        "4611686018427387904H",
    ] {
        let want = err(FORMAT_ELEMENT_TYPE_OR_ITEM_SIZE);
        if let Err(p) = attempt(|| bad_format("format_huge_repeat", format.as_bytes(), want)) {
            failures.push(format!("{format:?}: {p}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn format_nested_beyond_64_levels() {
    let format = format!("{}B{}", "T{".repeat(65), "}".repeat(65));
    bad_format(
        "format_nesting_65",
        format.as_bytes(),
        err(FORMAT).has("64"),
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals and read-only memory

#[test]
fn read_only_memory_on_a_writable_request() {
    let spec = Spec {
        readonly: 1,
        ..Spec::bytes_1d()
    };
    run_case("readonly_on_writable_request", spec, |c| {
        let read_only = err(READ_ONLY).has("'hostile.Exporter'");
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, IxDyn>(read_only.clone());
        c.get_mut::<u8, Ix1>(read_only.clone());
        c.any(Want::Ok, Want::Ok);
        c.any_mut(read_only);
        c.read_only_writes();
    });
}

#[test]
fn refuses_writable_requests() {
    let spec = Spec {
        answer: Answer::RefuseWritable,
        ..Spec::bytes_1d()
    };
    run_case("refuses_writable", spec, |c| {
        let read_only = err(READ_ONLY).has("'hostile.Exporter'");
        c.get::<u8, IxDyn>(Want::Ok);
        c.get_mut::<u8, IxDyn>(read_only.clone());
        c.any(Want::Ok, Want::Ok);
        c.any_mut(read_only);
        c.read_only_writes();
    });
}

#[test]
fn refusal_with_an_exception() {
    let spec = Spec {
        answer: Answer::Fail,
        ..Spec::bytes_1d()
    };
    run_case("refusal", spec, |c| {
        all_u8_fail(
            c,
            err(REFUSED)
                .has("'hostile.Exporter'")
                .has("hostile refusal"),
        );
    });
}

/// A refusal that leaves a filled view behind (with a strong reference in `obj`): a failed
/// request must never be released.
#[test]
fn refusal_after_filling_the_view() {
    let spec = Spec {
        answer: Answer::FailAfterFilling,
        ..Spec::bytes_1d()
    };
    run_case("refusal_after_filling", spec, |c| {
        all_u8_fail(
            c,
            err(REFUSED)
                .has("'hostile.Exporter'")
                .has("hostile refusal"),
        );
    });
}

/// Finding 5b: -1 without an exception is a refusal with pybuf's own message, not a panic,
/// and leaves no exception set.
#[test]
fn refusal_without_an_exception() {
    let spec = Spec {
        answer: Answer::FailWithoutException,
        ..Spec::bytes_1d()
    };
    run_case("refusal_without_exception", spec, |c| {
        all_u8_fail(c, err(REFUSED).has("'hostile.Exporter'"));
        c.get::<f64, Ix2>(err(REFUSED).has("'hostile.Exporter'"));
    });
}

// ---------------------------------------------------------------------------------------------
// An exporter that rewrites its format after handing the view out

/// Finding 5: `format()` and `Debug` keep what was validated at acquisition; rewriting the
/// exporter's bytes afterwards (to non-UTF-8, or to another valid format) changes neither and
/// panics in neither.
#[test]
fn format_rewritten_after_acquisition() {
    run_case("format_rewritten", Spec::bytes_1d(), |c| {
        let obj = c.ex.obj.clone();
        let typed = Buffer::<u8, Ix1>::get(&obj).expect("a legal buffer");
        let any = AnyBuffer::get(&obj).expect("a legal buffer");
        let bytes_before = typed.to_vec().unwrap();
        for rewrite in [&b"\xff\xfe"[..], b"d", b"T{"] {
            c.ex.rewrite_format(rewrite);
            let label = format!("after rewriting the format to {rewrite:?}");
            match attempt(|| typed.format().to_string()) {
                Ok(f) if f == "B" => {}
                other => c.fail(&label, format!("Buffer::format() {other:?}, validated 'B'")),
            }
            match attempt(|| any.format().to_string()) {
                Ok(f) if f == "B" => {}
                other => c.fail(
                    &label,
                    format!("AnyBuffer::format() {other:?}, validated 'B'"),
                ),
            }
            match attempt(|| format!("{typed:?}")) {
                Ok(d) if d.contains("\"B\"") => {}
                other => c.fail(&label, format!("Buffer Debug {other:?}")),
            }
            match attempt(|| format!("{any:?}")) {
                Ok(d) if d.contains("\"B\"") => {}
                other => c.fail(&label, format!("AnyBuffer Debug {other:?}")),
            }
            match attempt(|| (typed.to_vec(), typed.item(5))) {
                Ok((Ok(v), Ok(last))) if v == bytes_before && last == bytes_before[5] => {}
                other => c.fail(&label, format!("values {other:?}")),
            }
        }
        c.ex.rewrite_format(b"B");
    });
}

// ---------------------------------------------------------------------------------------------
// Formats that must not hang: run in a child process with a time limit

/// Defines a test that runs `$body` in a child process (`in_child_process`), and the test
/// `$child` that is that body: it does nothing unless its parent started the process.
macro_rules! in_child {
    ($(#[$doc:meta])* fn $parent:ident / $child:ident() $body:block) => {
        $(#[$doc])*
        #[test]
        fn $parent() {
            in_child_process(stringify!($child));
        }

        /// The body of the test of the same name without `child_`, run in its own process.
        #[test]
        fn $child() {
            if !is_child(stringify!($child)) {
                return;
            }
            $body
        }
    };
}

/// Data of two-byte items for the deep two-byte formats.
fn two_byte_items(format: &str) -> Spec {
    Spec {
        data: (0..12).collect(),
        len: 12,
        itemsize: 2,
        strides: Some(vec![2]),
        ..Spec::bytes_1d().format(format)
    }
}

in_child! {
    /// Finding 1: `"T{"*64 + "B" + "}"*64` with itemsize 1 (193 bytes) is matched or refused in
    /// time linear in its size; today's matcher costs 3× per level and never finishes.
    fn deep_format_finishes / child_deep_format_finishes() {
        let format = format!("{}B{}", "T{".repeat(64), "}".repeat(64));
        run_case("deep_format", Spec::bytes_1d().format(&format), |c| {
            let either = err(FORMAT_OR_ELEMENT_TYPE).or_ok();
            c.get::<u8, IxDyn>(either.clone());
            c.get::<u8, Ix1>(either.clone());
            c.get::<[u8; 1], Ix1>(either.clone());
            c.get::<u16, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.any(Want::Ok, either);
        });
    }
}

in_child! {
    /// Two bytes at the bottom of 64 levels of one-field structs.
    fn deep_two_byte_format_finishes / child_deep_two_byte_format_finishes() {
        let format = format!("{}BB{}", "T{".repeat(64), "}".repeat(64));
        run_case("deep_format_two_bytes", two_byte_items(&format), |c| {
            c.get::<[u8; 2], Ix1>(err(FORMAT_OR_ELEMENT_TYPE).or_ok());
            c.get::<u16, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.get::<u8, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.any(Want::Ok, err(FORMAT_OR_ELEMENT_TYPE));
        });
    }
}

in_child! {
    /// 63 levels of one-field structs around a sub-array of one-field structs.
    fn deep_format_around_a_subarray_finishes / child_deep_format_around_a_subarray_finishes() {
        let format = format!("{}(2)T{{B}}{}", "T{".repeat(63), "}".repeat(63));
        run_case("deep_format_subarray", two_byte_items(&format), |c| {
            c.get::<[u8; 2], Ix1>(err(FORMAT_OR_ELEMENT_TYPE).or_ok());
            c.get::<u16, Ix1>(err(FORMAT_OR_ELEMENT_TYPE));
            c.any(Want::Ok, err(FORMAT_OR_ELEMENT_TYPE));
        });
    }
}

in_child! {
    /// Huge repeat counts of zero-sized items: nothing may iterate over the count.
    fn huge_repeats_of_zero_size_items_finish / child_huge_repeats_of_zero_size_items_finish() {
        for format in [
            "4611686018427387904T{}",
            "9223372036854775807T{0B}",
            "(3037000499,3037000499)0B",
            "T{4611686018427387904T{}:a:B:b:}",
        ] {
            let zero_size = !format.ends_with(":b:}");
            let spec = Spec {
                len: if zero_size { 0 } else { 6 },
                itemsize: if zero_size { 0 } else { 1 },
                ..Spec::bytes_1d().format(format)
            };
            let either = err(FORMAT_ELEMENT_TYPE_OR_ITEM_SIZE).or_ok();
            run_case("huge_repeat_of_zero_size", spec, |c| {
                c.item_layout = either.clone();
                c.get::<[u8; 0], Ix1>(either.clone());
                c.get::<u8, Ix1>(either.clone());
                c.any(Want::Ok, either.clone());
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12, finding 1: the type name in read-only errors while Python renames the type

/// A short run of the rename storm (the long one is `tests/hostile_rename.rs`); clean under
/// valgrind only if no error path reads the type's name without the interpreter lock.
#[test]
fn read_only_errors_name_a_coherent_type_during_a_rename_storm() {
    rename_storm::run(40, 100);
}
