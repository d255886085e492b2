//! [`ViewOrCopy`]: a zero-copy view where one can exist, an owned copy where none can.

use ndarray::{Array, ArrayView, Dimension};

use crate::element::Element;
use crate::guard::ReadGuard;

/// What [`Buffer::read_or_copy`](crate::Buffer::read_or_copy) returns: a shared zero-copy
/// borrow when the layout allows a view, else an owned copy of the items in C order — the
/// role of ndarray's [`CowArray`](ndarray::CowArray), with pybuf's borrow held while the
/// view lives.
///
/// Use [`view`](ViewOrCopy::view) for an [`ArrayView`] either way, or match on the variants
/// to learn which one it is.
///
/// ```
/// use pybuf::{Buffer1, ViewOrCopy};
/// use pyo3::prelude::*;
///
/// Python::attach(|py| -> PyResult<()> {
///     // a float64 array at an odd address: no &[f64] can point at it
///     let x = py.eval(c"__import__('numpy').frombuffer(bytearray(25), 'f8', offset=1)", None, None)?;
///     let buf = Buffer1::<f64>::get(&x)?;
///     assert!(buf.read().is_err());
///     let items = buf.read_or_copy()?;
///     assert!(matches!(items, ViewOrCopy::Copy(_)));
///     assert_eq!(items.view().sum(), 0.0);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub enum ViewOrCopy<'a, T: Element, D: Dimension> {
    /// A zero-copy borrow of the buffer's memory (as [`Buffer::read`](crate::Buffer::read)).
    View(ReadGuard<'a, T, D>),
    /// An owned copy of the items, in C order (as [`Buffer::to_array`](crate::Buffer::to_array)).
    Copy(Array<T, D>),
}

impl<T: Element, D: Dimension> ViewOrCopy<'_, T, D> {
    /// The items as an ndarray view, whichever variant this is.
    pub fn view(&self) -> ArrayView<'_, T, D> {
        match self {
            ViewOrCopy::View(guard) => guard.view(),
            ViewOrCopy::Copy(array) => array.view(),
        }
    }

    /// The items as a slice in C order: always for a copy, for a view when the buffer is
    /// C-contiguous.
    pub fn as_slice(&self) -> Option<&[T]> {
        match self {
            ViewOrCopy::View(guard) => guard.as_slice(),
            ViewOrCopy::Copy(array) => array.as_slice(),
        }
    }

    /// Whether this is a zero-copy view of the buffer's memory.
    pub fn is_view(&self) -> bool {
        matches!(self, ViewOrCopy::View(_))
    }

    /// The items as an owned array: the copy itself, or a new copy of the view (ending the
    /// borrow).
    pub fn into_owned(self) -> Array<T, D> {
        match self {
            ViewOrCopy::View(guard) => guard.view().to_owned(),
            ViewOrCopy::Copy(array) => array,
        }
    }
}
