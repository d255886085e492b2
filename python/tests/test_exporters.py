"""Every exporter of CONFORMANCE.md section E, through every function that accepts it.

Expected values come from Python: numpy's reading of the same object, memoryview's
attributes and tobytes(), math on Python floats.
"""

import array
import collections
import ctypes
import math
import mmap
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import _testbuffer as tb
import pybuf_testmod as m
from conftest import NUMPY_NUMERIC, Point, mmap_of, needs_pep688, numpy_array, pep688_class, values


# ---- describe / tobytes: what pybuf sees equals what memoryview sees --------------------

def test_describe_matches_memoryview(numeric):
    info = m.describe(numeric)
    with memoryview(numeric) as view:
        assert info["format"] == view.format
        assert info["shape"] == view.shape
        assert info["strides"] == view.strides
        assert info["itemsize"] == view.itemsize
        assert info["ndim"] == view.ndim
        assert info["readonly"] == view.readonly
        assert info["c_contiguous"] == view.c_contiguous
        assert info["f_contiguous"] == view.f_contiguous


@pytest.mark.parametrize("order", ["C", "F"])
def test_tobytes_matches_memoryview(numeric, order):
    with memoryview(numeric) as view:
        assert m.tobytes(numeric, order) == view.tobytes(order)


def test_total_matches_python(numeric):
    data = values(numeric)
    expected = sum(data)
    result = m.total(numeric)
    if data:
        assert type(result) is (int if isinstance(data[0], bool) else type(expected))
    if isinstance(expected, (int, bool)):
        assert result == int(expected)
    else:
        assert result == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("dtype", NUMPY_NUMERIC)
@pytest.mark.parametrize("layout", ["C", "F", "T", "step", "reversed", "0d"])
def test_total_every_numpy_dtype_and_layout(dtype, layout):
    a = numpy_array(dtype, (4, 6))
    a = {
        "C": a,
        "F": np.asfortranarray(a),
        "T": a.T,
        "step": a[::2, 1::3],
        "reversed": a[::-1, ::-1],
        "0d": a[1, 1, ...],
    }[layout]
    expected = sum(a.ravel().tolist())
    assert m.total(a) == pytest.approx(expected)
    kind = {"bool": int, "float16": float, "float32": float, "float64": float,
            "complex64": complex, "complex128": complex}.get(dtype, int)
    assert type(m.total(a)) is kind


def test_total_of_array_typecodes():
    for code in array.typecodes:
        if code in "uw":
            continue
        a = array.array(code, [1, 2, 3, 4] if code not in "fd" else [0.5, 1.5, 2.5])
        assert m.total(a) == sum(a.tolist()), code


def test_total_of_integer_extremes_is_exact():
    a = np.array([2**63 - 1, 2**63 - 1, 2**63 - 1], dtype=np.int64)
    assert m.total(a) == 3 * (2**63 - 1)
    b = np.array([2**64 - 1] * 4, dtype=np.uint64)
    assert m.total(b) == 4 * (2**64 - 1)


# ---- typed functions: each accepts every exporter of its element type -------------------

def f64_1d():
    return {
        "numpy": lambda: np.array([3.0, 4.0, 12.0]),
        "numpy-strided": lambda: np.arange(10.0)[1::3],
        "numpy-reversed": lambda: np.arange(5.0)[::-1],
        "numpy-0d": lambda: np.array(-2.0),
        "numpy-scalar": lambda: np.float64(6.5),
        "array-d": lambda: array.array("d", [1.0, -2.0, 2.0]),
        "ctypes-array": lambda: (ctypes.c_double * 3)(2.0, 3.0, 6.0),
        "ctypes-scalar": lambda: ctypes.c_double(-4.0),
        "memoryview-cast": lambda: memoryview(array.array("d", [1.0, 2.0]).tobytes()).cast("d"),
        "memoryview-slice": lambda: memoryview(array.array("d", range(8)))[::-3],
        "mmap-cast": lambda: memoryview(mmap_of(array.array("d", [5.0, 12.0]).tobytes())).cast("d"),
        "testbuffer": lambda: tb.ndarray([1.0, 2.0, 2.0], shape=[3], format="d"),
        "testbuffer-<d": lambda: tb.ndarray([1.0, 2.0, 2.0], shape=[3], format="<d"),
        "testbuffer-1d": lambda: tb.ndarray([1.0, 2.0, 2.0], shape=[3], format="1d"),
    }


F64_1D = f64_1d()


@pytest.mark.parametrize("name", sorted(F64_1D))
def test_norm(name):
    x = F64_1D[name]()
    expected = math.sqrt(sum(v * v for v in values(x)))
    assert m.norm(x) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(
    "make",
    [
        lambda: numpy_array("float64", (3, 4)),
        lambda: np.asfortranarray(numpy_array("float64", (3, 4))),
        lambda: numpy_array("float64", (4, 3)).T,
        lambda: numpy_array("float64", (6, 8))[::-2, 1::3],
        lambda: np.zeros((0, 3)),
        lambda: np.zeros((3, 0)),
        lambda: ((ctypes.c_double * 3) * 2)((1, 2, 3), (4, 5, 6)),
        lambda: memoryview(array.array("d", range(6))).cast("B").cast("d", shape=[2, 3]),
        lambda: tb.ndarray([float(i) for i in range(12)], shape=[3, 4], format="d"),
        lambda: tb.ndarray([float(i) for i in range(12)], shape=[3, 4], format="d", flags=tb.ND_FORTRAN),
        lambda: np.broadcast_to(np.arange(3.0), (2, 3)),
    ],
    ids=["C", "F", "T", "strided", "empty-rows", "empty-cols", "ctypes", "memoryview", "testbuffer",
         "testbuffer-F", "broadcast"],
)
def test_row_sums(make):
    x = make()
    rows = np.asarray(x).tolist()
    assert m.row_sums(x) == [sum(row) for row in rows]


@pytest.mark.parametrize(
    "make",
    [
        lambda: (np.arange(48) * 37 % 256).astype(np.uint8).reshape(6, 8),
        lambda: (np.arange(48) * 37 % 256).astype(np.uint8).reshape(6, 8)[::-1, ::3],
        lambda: memoryview(bytes(range(200, 256)) * 2).cast("B", shape=[8, 14]),
        lambda: ((ctypes.c_uint8 * 4) * 3)((1, 2, 3, 4), (1, 1, 1, 1), (255, 0, 0, 9)),
        lambda: ((ctypes.c_ubyte * 2) * 2)((7, 7), (7, 8)),
        lambda: tb.ndarray(list(range(16)), shape=[4, 4], format="B", flags=tb.ND_PIL),
    ],
    ids=["numpy", "numpy-strided", "memoryview-cast", "ctypes", "ctypes-ubyte", "testbuffer-pil"],
)
def test_histogram(make):
    image = make()
    if isinstance(image, tb.ndarray) and image.suboffsets:
        # A view cannot follow suboffsets: refused with BufferError, never misread.
        with pytest.raises(BufferError, match="suboffsets"):
            m.histogram(image)
        return
    counts = collections.Counter(values(image))
    result = m.histogram(image)
    # Rust-owned memory, read by numpy without a copy.
    array_view = np.asarray(result)
    assert array_view.dtype == np.uint64 and array_view.shape == (256,)
    assert array_view.tolist() == [counts.get(i, 0) for i in range(256)]
    with memoryview(result) as view:
        assert view.readonly
        assert view.tolist() == [counts.get(i, 0) for i in range(256)]


def test_outer_returns_writable_rust_memory():
    a, b = np.array([1.0, -2.0, 3.0]), array.array("d", [0.5, 4.0])
    result = m.outer(a, b)
    product = np.asarray(result)
    assert product.shape == (3, 2) and product.dtype == np.float64
    assert product.tolist() == np.outer(a, b).tolist()
    # Exported memory goes back into pybuf functions like any other buffer.
    assert m.row_sums(result) == [sum(row) for row in product.tolist()]
    product[0, 0] = 100.0  # writable, and the same memory
    assert m.flatten(result)[0] == 100.0
    assert np.asarray(m.outer(a, np.zeros(0))).shape == (3, 0)


def writable_f64(n):
    return {
        "numpy": lambda: np.zeros(n),
        "numpy-strided": lambda: np.zeros(2 * n)[::2],
        "numpy-reversed": lambda: np.zeros(n)[::-1],
        "array": lambda: array.array("d", [0.0] * n),
        "bytearray-cast": lambda: memoryview(bytearray(8 * n)).cast("d"),
        "ctypes": lambda: (ctypes.c_double * n)(),
        "mmap-cast": lambda: memoryview(mmap.mmap(-1, 8 * n)).cast("d"),
        "testbuffer": lambda: tb.ndarray([0.0] * n, shape=[n], format="d", flags=tb.ND_WRITABLE),
    }


WRITABLE = writable_f64(4)


@pytest.mark.parametrize("name", sorted(WRITABLE))
def test_scale_writes_out(name):
    out = WRITABLE[name]()
    x = np.array([1.0, -2.0, 0.5, 3.0])
    m.scale(x, 2.0, out)
    assert values(out) == [2.0, -4.0, 1.0, 6.0]
    assert x.tolist() == [1.0, -2.0, 0.5, 3.0]


def test_scale_keywords_and_interleaved_views():
    a = np.arange(8.0)
    # a[::2] and a[1::2] share no element: pybuf's registry sees that exactly.
    m.scale(x=a[::2], factor=10.0, out=a[1::2])
    assert a.tolist() == [0.0, 0.0, 2.0, 20.0, 4.0, 40.0, 6.0, 60.0]


def test_scale_same_input_from_many_threads():
    # Shared borrows of one input from several threads (interpreter released) never conflict.
    x = np.arange(100_000.0)
    outs = [np.empty_like(x) for _ in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: m.scale(x, float(i), outs[i]), range(8)))
    for i, out in enumerate(outs):
        assert np.array_equal(out, x * i)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros((2, 3, 4)),
        lambda: np.zeros((3, 4), order="F"),
        lambda: array.array("d", [1.0] * 5),
        lambda: ((ctypes.c_double * 2) * 2)(),
        lambda: ctypes.c_double(1.0),
        lambda: np.array(1.0),
        lambda: tb.ndarray([0.0] * 6, shape=[2, 3], format="d", flags=tb.ND_WRITABLE),
        lambda: memoryview(bytearray(16)).cast("d", shape=[1, 2]),
    ],
    ids=["numpy-3d", "numpy-F", "array", "ctypes-2d", "ctypes-scalar", "numpy-0d", "testbuffer", "memoryview"],
)
def test_fill(make):
    out = make()
    m.fill(out, 2.5)
    assert values(out) == [2.5] * len(values(out))


def test_fill_touches_only_the_view():
    a = np.zeros((4, 6))
    m.fill(a[::2, ::-3], 1.0)
    expected = np.zeros((4, 6))
    expected[::2, ::-3] = 1.0
    assert a.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "make",
    [
        lambda: numpy_array("float64", (2, 3, 4)),
        lambda: numpy_array("float64", (2, 3, 4)).transpose(2, 0, 1)[::-1],
        lambda: np.frombuffer(bytearray(b"\x00") + np.arange(3.0).tobytes(), "f8", offset=1),
        lambda: np.lib.stride_tricks.as_strided(np.arange(5.0), (3,), (12,)),
        lambda: np.array(4.0),
        lambda: tb.ndarray([float(i) for i in range(12)], shape=[3, 4], format="d", flags=tb.ND_PIL),
        lambda: tb.ndarray([float(i) for i in range(12)], shape=[3, 4], format="d", flags=tb.ND_PIL)[::-1, ::2],
        lambda: (ctypes.c_double * 3)(1.5, 2.5, 3.5),
    ],
    ids=["3d", "transposed", "misaligned", "stride-12", "0d", "pil", "pil-strided", "ctypes"],
)
def test_flatten_any_layout(make):
    x = make()
    expected = x.tolist() if isinstance(x, tb.ndarray) else values(x)
    if isinstance(x, tb.ndarray):
        expected = np.ravel(expected).tolist()
    assert m.flatten(x) == expected


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: np.float64(2.5), 2.5),
        (lambda: np.array(-1.0), -1.0),
        (lambda: ctypes.c_double(0.125), 0.125),
        (lambda: tb.ndarray(3.5, shape=[], format="d"), 3.5),
    ],
    ids=["numpy-scalar", "numpy-0d", "ctypes", "testbuffer"],
)
def test_scalar(make, expected):
    assert m.scalar(make()) == expected


# ---- PEP 688 classes (3.12+) --------------------------------------------------------------

@needs_pep688
def test_pep688_class_every_function():
    Exporter = pep688_class()
    x = Exporter(array.array("d", [3.0, 4.0]))
    assert m.norm(x) == 5.0
    assert m.total(x) == 7.0
    assert m.flatten(x) == [3.0, 4.0]
    assert m.tobytes(x) == array.array("d", [3.0, 4.0]).tobytes()
    out = Exporter(array.array("d", [0.0, 0.0]))
    m.scale(x, 3.0, out)
    assert out.data.tolist() == [9.0, 12.0]
    # Each call acquired the buffer once and released it exactly once, before returning.
    assert x.released == 5
    assert out.released == 1


@needs_pep688
def test_pep688_readonly_class_refused_as_output():
    Exporter = pep688_class()
    out = Exporter(array.array("d", [0.0, 0.0]), readonly=True)
    with pytest.raises(BufferError, match="expected a writable buffer"):
        m.scale(np.ones(2), 2.0, out)
    assert out.data.tolist() == [0.0, 0.0]
    assert out.released == 1


# ---- lifetime: buffers are released when the call returns ---------------------------------

def test_bytearray_resizable_after_calls():
    ba = bytearray(range(16))
    m.total(ba)
    m.histogram(memoryview(ba).cast("B", shape=[4, 4]))
    m.fill(memoryview(ba).cast("d"), 0.0)
    ba.extend(b"more")  # BufferError if any export were still alive
    assert len(ba) == 20


def test_mmap_closable_after_calls():
    mm = mmap_of(array.array("d", [1.0, 2.0]).tobytes())
    assert m.total(mm) == sum(mm[:])
    view = memoryview(mm).cast("d")
    assert m.norm(view) == pytest.approx(math.sqrt(5.0))
    view.release()
    mm.close()  # BufferError if pybuf still held an export


def test_structures_are_described_not_summed():
    points = (Point * 2)(Point(1.0, 2.0), Point(3.0, 4.0))
    info = m.describe(points)
    with memoryview(points) as view:
        assert info["format"] == view.format
        assert info["itemsize"] == ctypes.sizeof(Point)
        assert info["shape"] == view.shape
    assert info["element_kind"] == "Other"
    assert m.tobytes(points) == bytes(points)


# ---- records: #[derive(pybuf::Element)] ---------------------------------------------------

POINT_DTYPE = np.dtype([("x", "f8"), ("y", "f8")])


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.array([(1.0, 2.0), (3.0, 8.0), (-1.0, 5.0)], dtype=POINT_DTYPE),
        lambda: np.array([(1.0, 2.0), (9.0, 9.0), (3.0, 8.0), (9.0, 9.0)], dtype=POINT_DTYPE)[::2],
        lambda: (Point * 2)(Point(1.0, 2.0), Point(3.0, 4.0)),
        lambda: Point(5.0, 6.0),
    ],
    ids=["numpy-structured", "numpy-structured-strided", "ctypes-structure-array", "ctypes-structure"],
)
def test_centroid(make):
    points = make()
    rows = [tuple(p) for p in np.atleast_1d(np.asarray(points)).tolist()]
    xs, ys = zip(*rows)
    assert m.centroid(points) == (pytest.approx(sum(xs) / len(xs)), pytest.approx(sum(ys) / len(ys)))
