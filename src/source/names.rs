//! What an acquisition remembers of the exporter for later messages: its format string and
//! its type name, both copied while attached so that no later call (on any thread, with or
//! without the interpreter lock) reads Python-owned memory again.

use std::ffi::{c_char, CStr};
use std::fmt;

use pyo3::types::PyType;
use pyo3::{ffi, prelude::*};

use zerocopy::IntoBytes;

use crate::format::FormatError;

/// A copy of the exporter's format string.
///
/// Two machine words, each written whole: a format of at most [`INLINE`] ASCII bytes lives in
/// `inline` (its bytes in memory order, padded with NULs, which a format string cannot
/// contain), anything longer or not ASCII in `spill`. Every acquisition builds and moves one
/// of these, so the representation matters: the earlier one (a tag byte, a length byte and a
/// byte array) was written with byte stores that the moves read back as words, and those
/// store-forwarding stalls were among the hottest instructions of a `bytes` acquisition under
/// `perf`; with whole words it went from about 71 to 49–58 ns (criterion, two short runs).
#[derive(Clone)]
pub(crate) struct FormatText {
    inline: u64,
    spill: Option<Box<Spill>>,
}

/// Format strings up to this many bytes are stored without an allocation.
const INLINE: usize = 8;

/// A format that does not fit [`FormatText::inline`].
#[derive(Clone)]
struct Spill {
    /// The text (lossily decoded when the exporter's bytes were not UTF-8).
    text: Box<str>,
    /// Where UTF-8 decoding failed, when it did.
    invalid_at: Option<usize>,
}

/// `byte` placed at index `i` (< [`INLINE`]) of a word's memory representation.
#[inline(always)]
fn placed(byte: u8, i: usize) -> u64 {
    let shift = if cfg!(target_endian = "little") {
        8 * i
    } else {
        8 * (INLINE - 1 - i)
    };
    u64::from(byte) << shift
}

impl FormatText {
    /// Copies the exporter's NUL-terminated format; NULL means `"B"`.
    ///
    /// # Safety
    /// A non-NULL `ptr` is a NUL-terminated string that stays valid for the call.
    #[inline(always)]
    pub(crate) unsafe fn copy(ptr: *const c_char) -> FormatText {
        // Fast path: a short ASCII string, found and copied in one pass.
        // SAFETY: forwarded from the caller.
        if let Some(short) = unsafe { FormatText::at_most(ptr, INLINE) } {
            return short;
        }
        // SAFETY: not NULL (`at_most` answers for NULL) and NUL-terminated (caller's promise).
        let all = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        let spill = match std::str::from_utf8(all) {
            Ok(text) => Spill {
                text: text.into(),
                invalid_at: None,
            },
            Err(e) => Spill {
                text: String::from_utf8_lossy(all).into(),
                invalid_at: Some(e.valid_up_to()),
            },
        };
        FormatText {
            inline: 0,
            spill: Some(Box::new(spill)),
        }
    }

    /// The exporter's format if it is at most two bytes long (NULL is `"B"`), else `None`.
    ///
    /// # Safety
    /// As for [`FormatText::copy`].
    #[inline(always)]
    pub(crate) unsafe fn short(ptr: *const c_char) -> Option<FormatText> {
        // SAFETY: forwarded from the caller.
        unsafe { FormatText::at_most(ptr, 2) }
    }

    /// The format, inline, if it is at most `max` (≤ [`INLINE`]) ASCII bytes long (NULL is
    /// `"B"`); `None` otherwise. Reads at most `max + 1` bytes, stopping at the NUL.
    ///
    /// # Safety
    /// As for [`FormatText::copy`].
    #[inline(always)]
    unsafe fn at_most(ptr: *const c_char, max: usize) -> Option<FormatText> {
        if ptr.is_null() {
            return Some(FormatText::inline(placed(b'B', 0)));
        }
        let mut word = 0;
        for i in 0..=max {
            // SAFETY: a NUL-terminated string (caller's promise); we stop at its NUL, so every
            // byte read is at or before it.
            let byte = unsafe { *ptr.add(i) } as u8;
            if byte == 0 {
                return Some(FormatText::inline(word));
            }
            if i == max || !byte.is_ascii() {
                break;
            }
            word |= placed(byte, i);
        }
        None
    }

    #[inline(always)]
    fn inline(word: u64) -> FormatText {
        FormatText {
            inline: word,
            spill: None,
        }
    }

    /// The bytes as the exporter gave them (lossily decoded when they were not UTF-8).
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.spill {
            None => {
                // No NUL inside a format: the text is the word's bytes up to the padding.
                let padding = if cfg!(target_endian = "little") {
                    self.inline.leading_zeros()
                } else {
                    self.inline.trailing_zeros()
                } / 8;
                &self.inline.as_bytes()[..INLINE - padding as usize]
            }
            Some(spill) => spill.text.as_bytes(),
        }
    }

    /// The text (lossily decoded when the exporter's bytes were not UTF-8).
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match &self.spill {
            // ASCII by construction; `from_utf8` cannot fail, and costs a few instructions.
            None => std::str::from_utf8(self.as_bytes()).unwrap_or(""),
            Some(spill) => &spill.text,
        }
    }

    /// The text, or a format error when the exporter's bytes were not UTF-8.
    pub(crate) fn checked(&self) -> Result<&str, FormatError> {
        match self.spill.as_deref() {
            Some(Spill {
                text,
                invalid_at: Some(position),
            }) => Err(FormatError {
                format: text.to_string(),
                position: *position,
                expected: "an ASCII format string".into(),
                found: None,
            }),
            _ => Ok(self.as_str()),
        }
    }
}

/// The exporter's type name (`numpy.ndarray`, `bytes`, `mymodule.Image`), for messages.
///
/// Recorded at acquisition, while attached: a heap type's name is Python-owned memory that
/// `A.__name__ = ...`, `A.__qualname__ = ...` or `obj.__class__ = B` can free at any moment, so
/// it is copied then. A static (non-heap) type is immortal and its name cannot be changed
/// (CPython refuses `__name__`/`__qualname__` assignment on immutable types), so no copy per
/// acquisition is needed: with the full C API its `tp_name` is kept as a `'static` string;
/// under the stable ABI (`Py_LIMITED_API`), where `tp_name` cannot be read, its name is
/// computed once per type and kept in a small process-wide table (`static_names`).
#[derive(Clone)]
pub(crate) enum ExporterName {
    /// The name of a static type, kept for the rest of the process.
    Static(StaticName),
    /// A copy of a heap type's qualified name (boxed twice to keep the type one pointer
    /// wide on the acquisition path).
    Owned(Box<Box<str>>),
    /// Not recorded (writable buffers of heap types: no message after acquisition needs it).
    Unrecorded,
}

impl ExporterName {
    /// The name of `obj`'s type; for heap types only when `record` (it costs a Python call),
    /// and so for static types under the stable ABI once `static_names` is full.
    #[inline(always)]
    pub(crate) fn of(obj: &Bound<'_, PyAny>, record: bool) -> ExporterName {
        let ty = obj.get_type_ptr();
        if !is_heap_type(ty) {
            if let Some(name) = StaticName::of(obj, ty) {
                return ExporterName::Static(name);
            }
        }
        if record {
            ExporterName::Owned(Box::new(type_name(obj).into()))
        } else {
            ExporterName::Unrecorded
        }
    }
}

/// Whether `ty` (the type of a live object, read while attached) is a heap type.
#[inline(always)]
fn is_heap_type(ty: *mut ffi::PyTypeObject) -> bool {
    // SAFETY (both variants): `ty` is the type of a live object and we are attached (the
    // caller holds a `Bound`), so the type object is alive and its flags can be read.
    #[cfg(not(Py_LIMITED_API))]
    let flags = unsafe { (*ty).tp_flags };
    #[cfg(Py_LIMITED_API)]
    let flags = unsafe { ffi::PyType_GetFlags(ty) };
    flags & ffi::Py_TPFLAGS_HEAPTYPE != 0
}

impl fmt::Display for ExporterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExporterName::Static(name) => name.fmt(f),
            ExporterName::Owned(name) => f.write_str(name),
            ExporterName::Unrecorded => f.write_str("<exporter>"),
        }
    }
}

/// The `tp_name` of a static type.
///
/// Invariant: the pointer is a NUL-terminated string that is never freed or changed (the
/// only constructor is in [`StaticName::of`], which argues it).
#[cfg(not(Py_LIMITED_API))]
#[derive(Clone, Copy)]
pub(crate) struct StaticName(*const c_char);

// SAFETY: the string is immutable and lives as long as the process (the invariant), so it can
// be read from any thread.
#[cfg(not(Py_LIMITED_API))]
unsafe impl Send for StaticName {}
// SAFETY: as for `Send`.
#[cfg(not(Py_LIMITED_API))]
unsafe impl Sync for StaticName {}

#[cfg(not(Py_LIMITED_API))]
impl StaticName {
    /// The name of the static type `ty` of `obj`: its `tp_name`, never `None` here.
    #[inline(always)]
    fn of(_obj: &Bound<'_, PyAny>, ty: *mut ffi::PyTypeObject) -> Option<StaticName> {
        // SAFETY: `ty` is a live type object (the caller's `Bound` keeps an instance alive,
        // attached); a static type is never deallocated and its `tp_name` is an immutable
        // NUL-terminated string (CPython refuses to rename immutable types), so the pointer
        // stays valid for the rest of the process, which is what `StaticName` requires.
        Some(StaticName(unsafe { (*ty).tp_name }))
    }

    fn as_c_str(&self) -> &'static CStr {
        // SAFETY: the type's invariant: NUL-terminated, immutable, never freed.
        unsafe { CStr::from_ptr(self.0) }
    }
}

#[cfg(not(Py_LIMITED_API))]
impl fmt::Display for StaticName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.as_c_str().to_string_lossy();
        f.write_str(name.strip_prefix("builtins.").unwrap_or(&name))
    }
}

/// The name of a static type, from the process-wide table of [`static_names`].
#[cfg(Py_LIMITED_API)]
#[derive(Clone, Copy)]
pub(crate) struct StaticName(&'static static_names::Entry);

#[cfg(Py_LIMITED_API)]
impl StaticName {
    /// The name of the static type `ty` of `obj`, from the table (computed and entered on the
    /// type's first acquisition); `None` when the table is full.
    #[inline(always)]
    fn of(obj: &Bound<'_, PyAny>, ty: *mut ffi::PyTypeObject) -> Option<StaticName> {
        match static_names::lookup(ty) {
            Some(entry) => Some(StaticName(entry)),
            None => static_names::insert(&obj.get_type()).map(StaticName),
        }
    }
}

#[cfg(Py_LIMITED_API)]
impl fmt::Display for StaticName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

/// Names of static types under the stable ABI, computed once per type.
///
/// The limited API has no access to `tp_name`; `__module__` and `__qualname__` (what
/// [`type_name`] reads) allocate Python strings, too slow for every acquisition of a `bytes`
/// or an ndarray. A static type's name cannot change and the type is never deallocated
/// (CPython never unloads extension modules), so its name is computed on the first
/// acquisition from an object of that type and kept, keyed by the type's address, for the
/// rest of the process. Lookups are lock-free: one multiply, a load per probed slot and a
/// compare. The table is small and fixed (a process has a bounded number of static types
/// that export buffers); when it is full, names of further static types are recorded like
/// heap types' (a copy per acquisition, when a message may need it).
///
/// Entries are never removed: the names stay readable, from any thread, for the whole
/// process. Should a static type ever be freed (only possible for a type that C code
/// allocated and freed itself, outside what CPython supports for static types) and another
/// static type take its address, messages would name the old type: a wrong word in a message,
/// never a read of freed memory.
#[cfg(Py_LIMITED_API)]
mod static_names {
    use std::ptr;
    use std::sync::atomic::{AtomicPtr, Ordering};

    use pyo3::types::PyType;
    use pyo3::{ffi, prelude::*};

    /// Slots in the table (a power of two).
    pub(super) const SLOTS: usize = 64;
    /// Slots probed (linearly) from a type's home slot before giving up.
    const PROBES: usize = 8;

    /// One static type's name.
    pub(crate) struct Entry {
        /// The type's address (compared only, never dereferenced).
        ty: usize,
        /// `numpy.ndarray`, `bytes`: [`super::type_name`]'s form.
        pub(crate) name: Box<str>,
    }

    /// The table: each slot is NULL or a leaked `Entry`, set once and never changed.
    static TABLE: [AtomicPtr<Entry>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];

    /// The home slot of a type address (Fibonacci hashing: the top bits of a multiply).
    #[inline(always)]
    fn home(ty: usize) -> usize {
        // (On 32-bit targets the constant is truncated: still odd, still a fine multiplier.)
        ty.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)
            >> (usize::BITS - SLOTS.trailing_zeros())
    }

    /// The entry of static type `ty`, if it has one.
    #[inline(always)]
    pub(crate) fn lookup(ty: *mut ffi::PyTypeObject) -> Option<&'static Entry> {
        let ty = ty as usize;
        let start = home(ty);
        for k in 0..PROBES {
            let slot = TABLE[(start + k) % SLOTS].load(Ordering::Acquire);
            if slot.is_null() {
                return None;
            }
            // SAFETY: a non-NULL slot points to a leaked `Entry`, fully written before it was
            // published (the `Release` of `insert`'s compare-exchange, seen by the `Acquire`
            // load above), and never freed or changed.
            let entry: &'static Entry = unsafe { &*slot };
            if entry.ty == ty {
                return Some(entry);
            }
        }
        None
    }

    /// Computes the name of the static type `ty` and enters it; `None` when the table has
    /// no free slot within reach or the name cannot be read (then nothing is entered).
    #[cold]
    #[inline(never)]
    pub(crate) fn insert(ty: &Bound<'_, PyType>) -> Option<&'static Entry> {
        let start = home(ty.as_type_ptr() as usize);
        let window = (0..PROBES).map(|k| &TABLE[(start + k) % SLOTS]);
        if window
            .clone()
            .all(|slot| !slot.load(Ordering::Acquire).is_null())
        {
            // No room: do not compute a name only to drop it (every acquisition of this
            // type comes here).
            return None;
        }
        let name = super::qualified_name(ty).ok()?;
        let ty = ty.as_type_ptr() as usize;
        let entry = Box::into_raw(Box::new(Entry {
            ty,
            name: name.into(),
        }));
        for slot in window {
            match slot.compare_exchange(ptr::null_mut(), entry, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: published: leaked from here on, see `lookup`.
                Ok(_) => return Some(unsafe { &*entry }),
                Err(other) => {
                    // SAFETY: as in `lookup`.
                    let other: &'static Entry = unsafe { &*other };
                    if other.ty == ty {
                        // Another thread entered the same type first (same name): use its.
                        // SAFETY: `entry` was never published; we own it.
                        drop(unsafe { Box::from_raw(entry) });
                        return Some(other);
                    }
                }
            }
        }
        // SAFETY: never published; we own it.
        drop(unsafe { Box::from_raw(entry) });
        None
    }
}

/// `numpy.ndarray`, `bytes`, `mymodule.Point`: the qualified name without `builtins.`.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    qualified_name(&obj.get_type()).unwrap_or_else(|_| "<unknown type>".to_string())
}

/// [`type_name`] of instances of `ty` (its `__name__` when it has no `__module__`), or the
/// error of reading its name.
fn qualified_name(ty: &Bound<'_, PyType>) -> PyResult<String> {
    // a class without `__module__` (made by code run in a bare namespace) still has a name
    let name = ty
        .fully_qualified_name()
        .or_else(|_| ty.name())?
        .to_string();
    Ok(name
        .strip_prefix("builtins.")
        .map(str::to_string)
        .unwrap_or(name))
}

#[cfg(test)]
mod format_text_tests {
    use super::*;
    use std::ffi::CString;

    /// Every shape of format the copy distinguishes: NULL, inline (0 to 8 ASCII bytes),
    /// spilled (longer, non-ASCII UTF-8, not UTF-8), and the two-byte fast path.
    #[test]
    fn copies_read_back_as_given() {
        let copy = |c: &CString| {
            // SAFETY: a NUL-terminated string that outlives the calls.
            unsafe { (FormatText::copy(c.as_ptr()), FormatText::short(c.as_ptr())) }
        };
        // SAFETY: NULL is allowed.
        let (null, short_null) = unsafe {
            (
                FormatText::copy(std::ptr::null()),
                FormatText::short(std::ptr::null()),
            )
        };
        assert_eq!(null.as_str(), "B");
        assert_eq!(short_null.unwrap().as_bytes(), b"B");
        for text in ["", "d", "<d", "=Zd", "T{<d:x:}", "T{<d:x:<d:y:}", "(2,3)<f"] {
            let (copied, short) = copy(&CString::new(text).unwrap());
            assert_eq!(copied.as_bytes(), text.as_bytes(), "{text:?}");
            assert_eq!(copied.as_str(), text);
            assert_eq!(copied.checked().unwrap(), text);
            match short {
                Some(short) => {
                    assert!(text.len() <= 2, "{text:?}");
                    assert_eq!(short.as_str(), text);
                }
                None => assert!(text.len() > 2, "{text:?}"),
            }
        }
        let (utf8, short) = copy(&CString::new("T{d:é:}").unwrap());
        assert_eq!(utf8.as_str(), "T{d:é:}");
        assert!(short.is_none());
        let (invalid, _) = copy(&CString::new(b"d\xff".to_vec()).unwrap());
        assert_eq!(invalid.as_str(), "d\u{fffd}");
        assert_eq!(invalid.checked().unwrap_err().position, 1);
    }
}

#[cfg(all(test, Py_LIMITED_API))]
mod tests {
    //! The stable ABI's table of static type names. It is process-wide and these tests fill
    //! it, so they run alone in a child process (the visible test re-executes this test
    //! binary with `--exact <child> --ignored`).

    use super::*;
    use pyo3::types::{PyList, PyTuple};

    #[test]
    fn static_type_names_are_entered_once_and_the_full_table_falls_back() {
        crate::child_test::run("source::names::tests::child_static_table", "CHILD-OK");
    }

    #[test]
    #[ignore = "child process of static_type_names_are_entered_once_and_the_full_table_falls_back"]
    fn child_static_table() {
        Python::attach(|py| {
            // An instance of every static (non-heap) type in builtins that `T()` makes (the
            // exceptions, int, list, ...) with the name Python gives its type: more types than
            // the table has slots.
            let ns = pyo3::types::PyDict::new(py);
            py.run(
                c"
import builtins
cases, seen = [], set()
for t in vars(builtins).values():
    if isinstance(t, type) and not t.__flags__ & (1 << 9) and t not in seen:
        seen.add(t)
        try:
            obj = t()
        except Exception:
            continue
        name = t.__qualname__ if t.__module__ == 'builtins' else f'{t.__module__}.{t.__qualname__}'
        cases.append((obj, name))
",
                Some(&ns),
                None,
            )
            .unwrap();
            let cases = ns.get_item("cases").unwrap().unwrap();
            let cases = cases.cast::<PyList>().unwrap();
            assert!(
                cases.len() > static_names::SLOTS,
                "only {} static types",
                cases.len()
            );
            let mut entered = Vec::new();
            let mut refused = Vec::new();
            for case in cases.iter() {
                let case = case.cast::<PyTuple>().unwrap();
                let obj = case.get_item(0).unwrap();
                let expected: String = case.get_item(1).unwrap().extract().unwrap();
                let ty = obj.get_type();
                assert!(!is_heap_type(ty.as_type_ptr()), "{expected}");
                assert!(
                    static_names::lookup(ty.as_type_ptr()).is_none(),
                    "{expected}"
                );
                // Not recorded on request, yet named: static types are entered regardless.
                let name = ExporterName::of(&obj, false);
                match &name {
                    ExporterName::Static(_) => {
                        assert_eq!(name.to_string(), expected);
                        let entry = static_names::lookup(ty.as_type_ptr()).expect(&expected);
                        assert_eq!(&*entry.name, expected);
                        entered.push((obj, expected));
                    }
                    // The table has no room for it: recorded like a heap type's name, only
                    // when asked for.
                    ExporterName::Unrecorded => {
                        assert!(static_names::lookup(ty.as_type_ptr()).is_none());
                        let recorded = ExporterName::of(&obj, true);
                        assert!(matches!(recorded, ExporterName::Owned(_)), "{expected}");
                        assert_eq!(recorded.to_string(), expected);
                        refused.push(expected);
                    }
                    ExporterName::Owned(_) => panic!("{expected}: copied though not asked"),
                }
            }
            assert!(entered.len() <= static_names::SLOTS);
            assert!(
                entered.len() >= static_names::SLOTS / 2,
                "{}",
                entered.len()
            );
            assert!(!refused.is_empty());
            // Entered names are found again, the same entry, from another thread too.
            let entries: Vec<(usize, &'static static_names::Entry, String)> = entered
                .iter()
                .map(|(obj, expected)| {
                    let ty = obj.get_type_ptr();
                    (
                        ty as usize,
                        static_names::lookup(ty).unwrap(),
                        expected.clone(),
                    )
                })
                .collect();
            py.detach(|| {
                std::thread::spawn(move || {
                    for (ty, entry, expected) in entries {
                        let again = static_names::lookup(ty as *mut ffi::PyTypeObject).unwrap();
                        assert!(std::ptr::eq(again, entry));
                        assert_eq!(&*again.name, expected);
                    }
                })
                .join()
                .unwrap()
            });
            println!(
                "{} static types entered, {} refused",
                entered.len(),
                refused.len()
            );
        });
        println!("CHILD-OK");
    }
}
