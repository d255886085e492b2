"""Wrong inputs: each gives the documented exception, a message naming expected versus found,
and leaves every input unchanged (check_error compares snapshots taken before the call).

TypeError: not a buffer, wrong element type, other byte order, wrong number of dimensions.
BufferError: read-only memory for a writable argument, borrow conflicts (overlapping input and
output), exporter refusals, layouts no view can describe (misaligned, suboffsets, strides
that are not multiples of the item size, self-overlapping outputs).
ValueError: size mismatches, invalid values (a bool byte that is 2).
"""

import array
import ctypes
import mmap
import sys

import numpy as np
import pytest

import _testbuffer as tb
import pybuf_testmod as m
from conftest import check_error, mmap_of


# ---- not a buffer ------------------------------------------------------------------------

@pytest.mark.parametrize("obj", [[1.0, 2.0], None, 3.0, "text", {"a": 1}, object(), range(3)],
                         ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("func", [m.norm, m.row_sums, m.histogram, m.flatten, m.scalar, m.total,
                                  m.tobytes, m.describe], ids=lambda f: f.__name__)
def test_not_a_buffer(func, obj):
    check_error(TypeError, func, obj, contains=[
        "expected an object supporting the buffer protocol",
        f"got '{type(obj).__name__}'",
    ])


def test_not_a_buffer_as_output():
    x = np.ones(2)
    check_error(TypeError, m.scale, x, 2.0, [0.0, 0.0],
                contains=["expected an object supporting the buffer protocol", "got 'list'"])
    check_error(TypeError, m.fill, (1.0,), 0.0, contains=["got 'tuple'"])


# ---- wrong element type ------------------------------------------------------------------

@pytest.mark.parametrize(
    "make,found",
    [
        (lambda: np.arange(3, dtype=np.float32), "float32 (format 'f')"),
        (lambda: np.arange(3, dtype=np.int64), "int64 (format 'l')"),
        (lambda: np.arange(3, dtype=np.complex128), "complex128 (format 'Zd')"),
        (lambda: array.array("i", [1, 2]), "int32 (format 'i')"),
        (lambda: b"abc", "uint8 (format 'B')"),
        (lambda: (ctypes.c_float * 2)(), "float32 (format '<f')"),
        (lambda: np.zeros(2, dtype=[("a", "f8")]), "struct {a: float64 @0} (format 'T{d:a:}', itemsize 8)"),
    ],
    ids=["float32", "int64", "complex128", "array-i", "bytes", "ctypes-float", "structured"],
)
def test_wrong_element_type(make, found):
    # numpy's names lead, the Rust type follows in parentheses
    x = make()
    check_error(TypeError, m.norm, x, contains=[
        "expected a 1-D buffer of float64 (f64, format 'd')",
        f"got a 1-D buffer of {found}",
        f"{type(x).__name__}'",
    ])


def test_wrong_element_type_2d_u8():
    check_error(TypeError, m.histogram, np.zeros((2, 2), np.int16),
                contains=["expected a 2-D buffer of uint8 (u8, format 'B')", "int16 (format 'h')",
                          "shape (2, 2)"])


def test_wrong_element_type_output():
    out = np.zeros(3, dtype=np.float32)
    check_error(TypeError, m.scale, np.ones(3), 2.0, out,
                contains=["expected a 1-D buffer of float64 (f64", "float32 (format 'f')"])
    check_error(TypeError, m.fill, np.zeros((2, 2), np.int32), 1.0,
                contains=["expected a buffer of float64 (f64, format 'd')", "int32 (format 'i')"])


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros(2, dtype=np.longdouble),
        lambda: np.zeros(2, dtype="S3"),
        lambda: np.zeros(2, dtype="U3"),
        lambda: np.zeros(2, dtype=[("x", "f8"), ("y", "i4")]),
        lambda: (ctypes.c_char * 3)(),
    ],
    ids=["longdouble", "bytes-S3", "unicode-U3", "structured", "ctypes-char"],
)
def test_total_refuses_non_numeric(make):
    x = make()
    with memoryview(x) as view:
        fmt = view.format
    if fmt in ("c", "<c"):
        # 'c' is a one-byte character: pybuf reads it as u8.
        assert m.total(x) == 0
        return
    check_error(TypeError, m.total, x, contains=[
        "expected a buffer of numbers (bool, int8..uint64, float16..float64, complex64/128), got a",
        f"format '{fmt}'"])


# ---- byte order --------------------------------------------------------------------------

NATIVE = f"{sys.byteorder}-endian"


def test_byte_swapped_input():
    x = np.arange(3.0).astype(">f8")
    check_error(TypeError, m.norm, x, contains=[
        "expected a 1-D buffer of float64 (f64, format 'd'), got a 1-D buffer of '>f8' (format '>d')",
        f"the byte order differs (big-endian data, {NATIVE} expected)"])
    check_error(TypeError, m.flatten, x, contains=["format '>d'"])
    check_error(TypeError, m.total, np.arange(4).astype(">i4"), contains=[
        "expected a buffer of numbers",
        "got a 1-D buffer of '>i4' (format '>i') with shape (4,) from 'numpy.ndarray'"])


def test_byte_swapped_output():
    out = np.zeros(3, dtype=">f8")
    check_error(TypeError, m.scale, np.ones(3), 2.0, out, contains=["format '>d'"])
    check_error(TypeError, m.fill, out, 1.0, contains=["format '>d'"])


# ---- number of dimensions ------------------------------------------------------------------

@pytest.mark.parametrize(
    "func,arg,expected,found",
    [
        (m.norm, lambda: np.zeros((2, 2)), "expected a 1-D buffer of float64 (f64", "got a 2-D buffer of float64 (format 'd')"),
        (m.row_sums, lambda: np.zeros(3), "expected a 2-D buffer of float64 (f64", "got a 1-D buffer"),
        (m.row_sums, lambda: np.zeros((1, 2, 3)), "expected a 2-D buffer of float64 (f64", "shape (1, 2, 3)"),
        (m.histogram, lambda: bytes(9), "expected a 2-D buffer of uint8 (u8", "got a 1-D buffer of uint8 (format 'B')"),
        (m.scalar, lambda: np.zeros(1), "expected a 0-D buffer of float64 (f64", "got a 1-D buffer"),
        (m.norm, lambda: (ctypes.c_double * 2 * 2)(), "expected a 1-D buffer of float64 (f64", "got a 2-D buffer of float64 (format '<d')"),
    ],
    ids=["norm-2d", "row_sums-1d", "row_sums-3d", "histogram-1d", "scalar-1d", "norm-ctypes-2d"],
)
def test_wrong_ndim(func, arg, expected, found):
    check_error(TypeError, func, arg(), contains=[expected, found])


def test_wrong_ndim_output():
    check_error(TypeError, m.scale, np.ones(4), 2.0, np.zeros((2, 2)),
                contains=["expected a 1-D buffer", "got a 2-D buffer"])


# ---- read-only memory for a writable argument ----------------------------------------------

def readonly_numpy():
    a = np.zeros(3)
    a.flags.writeable = False
    return a


def readonly_mmap():
    return memoryview(mmap_of(bytes(24))).toreadonly().cast("d")


@pytest.mark.parametrize(
    "make,type_name",
    [
        (readonly_numpy, "numpy.ndarray"),
        (lambda: np.broadcast_to(np.zeros(1), (3,)), "numpy.ndarray"),
        (lambda: memoryview(bytes(24)).cast("d"), "memoryview"),
        (readonly_mmap, "memoryview"),
        (lambda: tb.ndarray([0.0] * 3, shape=[3], format="d"), "ndarray"),
    ],
    ids=["numpy-readonly", "numpy-broadcast", "bytes-cast", "mmap-readonly", "testbuffer-readonly"],
)
def test_readonly_output(make, type_name):
    out = make()
    check_error(BufferError, m.scale, np.ones(3), 2.0, out, contains=["writable", type_name])
    check_error(BufferError, m.fill, out, 1.0, contains=["writable", type_name])


def test_readonly_bytes_output():
    check_error(BufferError, m.fill, b"12345678", 1.0, contains=["writable", "'bytes'"])


def test_mmap_access_read_output(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(24))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        check_error(BufferError, m.fill, mm, 1.0, contains=["writable", "'mmap.mmap'"])


def test_exporter_ignoring_writable_request():
    # staticarray ignores request flags and hands out read-only memory anyway.
    out = tb.staticarray()
    check_error(BufferError, m.fill, out, 1.0, contains=["expected a writable buffer"])


# ---- exporter refusals ---------------------------------------------------------------------

def test_exporter_refusal_keeps_cause():
    x = tb.ndarray([1.0, 2.0], shape=[2], format="d", flags=tb.ND_GETBUF_FAIL)
    err = check_error(BufferError, m.norm, x, contains=["refused a read-only buffer request"])
    assert err.__cause__ is not None


def test_numpy_datetime_refused():
    x = np.arange(3).astype("M8[D]")
    err = check_error(BufferError, m.total, x, contains=["'numpy.ndarray' refused"])
    assert isinstance(err.__cause__, ValueError)


# ---- layouts no view can describe ------------------------------------------------------------

def test_misaligned():
    x = np.frombuffer(bytearray(8 * 3 + 1), "f8", offset=1)
    check_error(BufferError, m.norm, x, contains=["aligned to 8 bytes", "found address"])
    out = np.frombuffer(bytearray(8 * 3 + 1), "f8", offset=1)
    check_error(BufferError, m.scale, np.ones(3), 2.0, out, contains=["aligned to 8 bytes"])
    # Copies still work.
    assert m.flatten(x) == [0.0, 0.0, 0.0]


def test_stride_not_multiple_of_itemsize():
    x = np.lib.stride_tricks.as_strided(np.arange(5.0), (3,), (12,))
    check_error(BufferError, m.norm, x, contains=["multiples of the item size 8", "stride 12"])


def test_suboffsets_refused_for_views():
    x = tb.ndarray([float(i) for i in range(6)], shape=[2, 3], format="d", flags=tb.ND_PIL)
    check_error(BufferError, m.row_sums, x, contains=["suboffsets"])


def test_self_overlapping_output():
    out = np.lib.stride_tricks.as_strided(np.zeros(1), (3,), (0,))
    assert out.flags.writeable
    check_error(BufferError, m.fill, out, 1.0, contains=["non-overlapping", "byte strides [0]"])


# ---- overlapping input and output: pybuf's borrow registry ----------------------------------

def overlapping_cases():
    a = np.arange(6.0)
    ba = bytearray(np.arange(4.0).tobytes())
    return {
        "same-array": (a, a),
        "shifted": (a[:-1], a[1:]),
        "reversed": (a, a[::-1]),
        "two-memoryviews": (memoryview(ba).cast("d"), memoryview(ba).cast("d")),
        "numpy-over-bytearray": (np.frombuffer(ba, "f8"), memoryview(ba).cast("d")),
        "ctypes-from-buffer": (np.frombuffer(ba, "f8")[:2],
                               (ctypes.c_double * 2).from_buffer(ba, 8)),
    }


@pytest.mark.parametrize("name", sorted(overlapping_cases()))
def test_overlapping_input_and_output(name):
    x, out = overlapping_cases()[name]
    check_error(BufferError, m.scale, x, 2.0, out, contains=[
        "cannot take a write (exclusive) borrow",
        "already under a live read (shared) borrow",
    ])


# ---- sizes and values ----------------------------------------------------------------------

def test_length_mismatch():
    check_error(ValueError, m.scale, np.ones(3), 2.0, np.zeros(4),
                contains=["expected 'out' of length 3 (the length of 'x'), got length 4"])


def test_invalid_bool_byte():
    x = np.frombuffer(b"\x01\x02", dtype=bool)
    check_error(ValueError, m.total, x, contains=["expected a valid bool", "[2]", "element 1"])


def test_invalid_order_argument():
    check_error(ValueError, m.tobytes, b"ab", "K", contains=["expected order 'C' or 'F'", "'K'"])


def test_wrong_scalar_argument_type():
    # PyO3's own extraction error, for comparison: the note names the argument (3.11+).
    with pytest.raises(TypeError, match="must be real number, not str") as info:
        m.scale(np.ones(2), "two", np.zeros(2))
    if sys.version_info >= (3, 11):
        assert "while processing 'factor'" in info.value.__notes__


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are 3.11+")
def test_error_notes_name_the_argument():
    with pytest.raises(TypeError) as info:
        m.scale(np.ones(2), 2.0, np.zeros(2, np.float32))
    assert "while processing 'out'" in getattr(info.value, "__notes__", [])
    with pytest.raises(BufferError) as info:
        m.fill(b"12345678", 1.0)
    assert "while processing 'out'" in getattr(info.value, "__notes__", [])


# ---- records -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "dtype",
    [
        [("a", "f8"), ("b", "f8")],
        [("x", "f4"), ("y", "f4")],
        [("x", "f8"), ("y", "f8"), ("z", "f8")],
        [("x", ">f8"), ("y", ">f8")],
    ],
    ids=["other-names", "float32-fields", "three-fields", "big-endian-fields"],
)
def test_centroid_wrong_record(dtype):
    points = np.zeros(2, dtype=dtype)
    with memoryview(points) as view:
        fmt = view.format
    check_error(TypeError, m.centroid, points, contains=[
        "expected a 1-D buffer of Point", f"format '{fmt}'"])


# ---- messages speak to Python callers --------------------------------------------------------

def failing_calls():
    """Calls that fail for each kind of error, with their exception type."""
    return {
        "element-type": (TypeError, lambda: m.norm(np.zeros(2, np.float32))),
        "byte-order": (TypeError, lambda: m.norm(np.zeros(2, ">f8"))),
        "ndim": (TypeError, lambda: m.norm(np.zeros((2, 2)))),
        "misaligned": (BufferError, lambda: m.norm(np.frombuffer(bytearray(25), "f8", offset=1))),
        "stride": (BufferError, lambda: m.norm(np.lib.stride_tricks.as_strided(np.arange(5.0), (3,), (12,)))),
        "suboffsets": (BufferError, lambda: m.row_sums(tb.ndarray([0.0] * 6, shape=[2, 3], format="d", flags=tb.ND_PIL))),
        "invalid-bool": (ValueError, lambda: m.total(np.frombuffer(b"\x02", bool))),
        "trailing-axis": (TypeError, lambda: m.gray(np.zeros((2, 2, 4), np.uint8))),
        "unsupported": (TypeError, lambda: m.mean(np.zeros(2, np.complex64))),
        "byte-length": (ValueError, lambda: m.parse_frames(bytes(18))),
        "not-contiguous": (BufferError, lambda: m.parse_frames(np.zeros((4, 17), np.uint8).T)),
        "record-size": (TypeError, lambda: m.frame_scores(np.zeros(2, FRAME_ALIGNED))),
    }


FRAME = np.dtype([("frame", "u4"), ("score", "f8"), ("x", "u2"), ("y", "u2"), ("label", "u1")])
FRAME_ALIGNED = np.dtype(FRAME.descr, align=True)


@pytest.mark.parametrize("name", sorted(failing_calls()))
def test_messages_hold_no_rust_advice(name):
    exc_type, call = failing_calls()[name]
    with pytest.raises(exc_type) as info:
        call()
    message = str(info.value)
    for rust_only in ["pybuf::", "to_vec()", "read_or_copy", "with_or_copy", "reinterpret"]:
        assert rust_only not in message, message
    assert message.startswith("expected "), message


def test_misaligned_message_names_numpy_dtype():
    x = np.frombuffer(bytearray(25), "f8", offset=1)
    check_error(BufferError, m.norm, x, contains=[
        "expected float64 (f64) items aligned to 8 bytes, found address 0x",
        "a zero-copy view of misaligned data is impossible"])


def test_rgba_is_not_rgb():
    check_error(TypeError, m.gray, np.zeros((2, 2, 4), np.uint8), contains=[
        "expected a 2-D buffer of (3,) uint8 ([u8; 3], format '(3)B', itemsize 3) or a 3-D buffer "
        "of uint8 whose last axis has length 3 and is contiguous",
        "got a 3-D buffer of uint8 (format 'B') with shape (2, 2, 4) from 'numpy.ndarray' whose last "
        "axis has length 4 and byte stride 1 (expected length 3 and byte stride 1)"])


def test_bgr_view_is_not_contiguous_rgb():
    img = np.zeros((2, 2, 3), np.uint8)
    check_error(TypeError, m.gray, img[..., ::-1], contains=[
        "whose last axis has length 3 and byte stride -1 (expected length 3 and byte stride 1)"])
    # a copy in memory order is fine
    assert np.asarray(m.gray(np.ascontiguousarray(img[..., ::-1]))).shape == (2, 2)


def test_gray_needs_three_dimensions():
    check_error(TypeError, m.gray, np.zeros((2, 2), np.uint8), contains=[
        "or a 3-D buffer of uint8 whose last axis has length 3",
        "got a 2-D buffer of uint8 (format 'B') with shape (2, 2)"])


def test_record_mismatch_gives_both_sizes():
    x = np.zeros(2, FRAME_ALIGNED)
    assert x.itemsize == 24 and FRAME.itemsize == 17
    check_error(TypeError, m.frame_scores, x, contains=[
        "expected a 1-D buffer of Frame (format 'T{<I:frame:<d:score:<H:x:<H:y:B:label:}', itemsize 17)",
        "itemsize 24) with shape (2,) from 'numpy.ndarray'"])


def test_ctypes_packed_structure_reports_its_itemsize():
    class P(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("frame", ctypes.c_uint32), ("score", ctypes.c_double),
                    ("x", ctypes.c_uint16), ("y", ctypes.c_uint16), ("label", ctypes.c_uint8)]
    p = (P * 2)()
    with memoryview(p) as view:
        fmt, itemsize = view.format, view.itemsize
    if sys.version_info >= (3, 12):
        # CPython 3.12+ describes _pack_ structures field by field: they read as records
        assert fmt == "T{<I:frame:<d:score:<H:x:<H:y:<B:label:}"
        assert m.frame_scores(p) == [0.0, 0.0]
        return
    assert fmt == "B"
    check_error(TypeError, m.frame_scores, p, contains=[
        f"got a 1-D buffer of uint8 (format '{fmt}', itemsize {itemsize}) with shape (2,) from '{type(p).__module__}.P_Array_2'"])
    # its bytes are the records
    assert m.parse_frames(p) == [(0, 0.0, 0, 0, 0)] * 2


def test_mean_of_unsupported_dtypes():
    for x, found in [
        (np.zeros(2, np.complex64), "complex64 (format 'Zf')"),
        (np.zeros(2, np.float16), "float16 (format 'e')"),
        (np.zeros(2, bool), "bool (format '?')"),
        (np.zeros(2, ">i2"), "'>i2' (format '>h')"),
    ]:
        check_error(TypeError, m.mean, x, contains=[
            "expected a buffer of int8, uint8, int16, uint16, int32, uint32, int64, uint64, "
            "float32, float64, got a 1-D buffer of " + found])


def test_reinterpret_errors():
    check_error(ValueError, m.parse_frames, bytes(18), contains=[
        "expected a length in bytes that is a multiple of 17 (the size of Frame), got 18 bytes "
        "from 'bytes'"])
    with pytest.raises(ValueError):  # numpy agrees
        np.frombuffer(bytes(18), FRAME)
    check_error(BufferError, m.parse_frames, np.zeros((4, 17), np.uint8).T, contains=[
        "expected a C-contiguous buffer (its bytes back to back), got shape (17, 4) with byte "
        "strides [1, 17] from 'numpy.ndarray'"])
