//! [`dispatch!`](crate::dispatch!): one body, instantiated for each element type a buffer may
//! hold.

/// Runs one body for whichever element type a buffer holds: a `match` on
/// [`AnyBuffer::element_kind`](crate::AnyBuffer::element_kind) written once.
///
/// `dispatch!(any, |buf: BufferD<T>| body)` takes an [`AnyBuffer`](crate::AnyBuffer) by value
/// and, for the element type `T` whose [`ElementKind`](crate::ElementKind) the buffer has,
/// binds `buf` to [`any.typed()`](crate::AnyBuffer::typed) of the annotated handle type and
/// evaluates `body`. The body is compiled once per element type with `T` a plain alias of
/// it, so anything that compiles for each of them works, `as` casts included. The macro's
/// value is `Result<R, pybuf::Error>` (`R` the body's type):
///
/// - `Ok(body)` for a handled element type;
/// - the error of `typed()` when the buffer fails its other checks (a `Buffer2<T>` of a 3-D
///   buffer: [`Error::Dimensions`](crate::Error::Dimensions));
/// - [`Error::UnsupportedElement`](crate::Error::UnsupportedElement) for any other element
///   type, naming the handled ones (a `TypeError` in Python).
///
/// Without a list, the types are the native integers and floats `i8`, `u8`, `i16`, `u16`,
/// `i32`, `u32`, `i64`, `u64`, `f32`, `f64`; give a list for others
/// (`[f32, f64, pybuf::half::f16]`, `[bool]`, `[pybuf::num_complex::Complex<f64>]`). Each
/// listed type is matched by [`ElementKind::of`](crate::ElementKind::of), so list native
/// scalar types only (`u64` also takes `'P'`, `u8` also takes `'c'`). `?` and `return` in
/// the body leave the enclosing function, as anywhere else.
///
/// ```
/// use pybuf::{AnyBuffer, BufferD};
/// use pyo3::prelude::*;
///
/// /// The mean of any numeric buffer, as float64.
/// #[pyfunction]
/// fn mean(x: AnyBuffer) -> PyResult<f64> {
///     let n = x.len() as f64;
///     let sum = pybuf::dispatch!(x, |buf: BufferD<T>| {
///         buf.with_or_copy(|v| v.iter().map(|&e| e as f64).sum::<f64>())
///     })??;
///     Ok(sum / n)
/// }
///
/// Python::attach(|py| -> PyResult<()> {
///     let np = py.import("numpy")?;
///     let x = np.call_method1("arange", (4,))?.call_method1("astype", ("uint16",))?;
///     assert_eq!(mean(x.extract()?)?, 1.5);
///     let c = np.call_method1("ones", (3,))?.call_method1("astype", ("complex64",))?;
///     let err = mean(c.extract()?).unwrap_err();
///     assert!(err.to_string().starts_with("TypeError: expected a buffer of int8, uint8, "));
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// With a list of types, and a handle that fixes the number of dimensions:
///
/// ```
/// use pybuf::{AnyBuffer, Buffer2};
/// # use pyo3::prelude::*;
///
/// fn row_maxima(x: AnyBuffer) -> Result<Vec<f64>, pybuf::Error> {
///     pybuf::dispatch!(x, [f32, f64], |m: Buffer2<T>| {
///         m.with_or_copy(|v| {
///             v.rows().into_iter().map(|r| r.fold(f64::MIN, |a, &b| a.max(b as f64))).collect()
///         })
///     })?
/// }
/// # Python::attach(|py| {
/// #     let m = py.eval(c"__import__('numpy').eye(2, dtype='float32')", None, None).unwrap();
/// #     assert_eq!(row_maxima(m.extract().unwrap()).unwrap(), [1.0, 1.0]);
/// # });
/// ```
#[macro_export]
macro_rules! dispatch {
    ($any:expr, |$buf:ident : $handle:ty| $body:expr) => {
        $crate::dispatch!(
            $any,
            [i8, u8, i16, u16, i32, u32, i64, u64, f32, f64],
            |$buf: $handle| $body
        )
    };
    ($any:expr, [$($elem:ty),+ $(,)?], |$buf:ident : $handle:ty| $body:expr) => {{
        let any: $crate::AnyBuffer = $any;
        let kind = any.element_kind();
        $(
            if kind == $crate::ElementKind::of::<$elem>() {
                #[allow(dead_code, non_camel_case_types)]
                type T = $elem;
                match any.typed() {
                    ::core::result::Result::Ok(typed) => {
                        let $buf: $handle = typed;
                        // a cast or conversion the body needs for one type is a no-op for
                        // another (`e as f64` with `T = f64`)
                        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
                        let value = $body;
                        ::core::result::Result::Ok::<_, $crate::Error>(value)
                    }
                    ::core::result::Result::Err(err) => ::core::result::Result::Err(err),
                }
            } else
        )+
        {
            ::core::result::Result::Err(any.unsupported_element(&[
                $($crate::ElementKind::of::<$elem>().name()),+
            ]))
        }
    }};
}
