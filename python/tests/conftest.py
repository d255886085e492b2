"""Shared helpers for the pybuf_testmod suite: exporters and an error-checking helper.

Expected values always come from Python itself (numpy, memoryview, struct), never from
pybuf. Every exporter factory returns a fresh object, so tests never share state.
"""

import array
import ctypes
import mmap
import sys

import numpy as np
import pytest

import _testbuffer as tb


def snapshot(obj):
    """The bytes of a buffer in C order, or None for objects that export none (or refuse)."""
    try:
        with memoryview(obj) as view:
            return view.tobytes()
    except (TypeError, BufferError, ValueError):
        return None


def values(obj):
    """The elements of a buffer as a flat Python list in C order, as numpy reads them
    (memoryview reads suboffset buffers, which numpy does not import)."""
    with memoryview(obj) as view:
        if view.suboffsets:
            return np.ravel(view.tolist()).tolist()
        return np.asarray(view).ravel().tolist()


def check_error(exc_type, func, *args, contains=(), **kwargs):
    """Calls func(*args, **kwargs), expecting exc_type.

    Checks that the message says what was expected and what was found (each string of
    `contains` occurs in it), and that no buffer argument changed.
    """
    inputs = list(args) + list(kwargs.values())
    before = [snapshot(a) for a in inputs]
    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)
    message = str(info.value)
    for part in contains:
        assert part in message, f"{part!r} not in {message!r}"
    assert [snapshot(a) for a in inputs] == before, "a failed call changed its inputs"
    return info.value


# ---------------------------------------------------------------------------------------
# Exporters. Each entry: id -> factory. Numeric data is integer-valued, so sums are exact.

NUMPY_NUMERIC = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]


def numpy_array(dtype, shape=(2, 3)):
    n = int(np.prod(shape))
    if dtype == "bool":
        return (np.arange(n) % 3 == 0).reshape(shape)
    data = np.arange(n) - (n // 2 if np.dtype(dtype).kind in "ifc" else 0)
    return data.astype(dtype).reshape(shape)


def mmap_of(data):
    mm = mmap.mmap(-1, len(data))
    mm[:] = data
    return mm


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def pep688_class():
    """A Python class exporting through __buffer__ (3.12+), counting releases."""

    class Exporter:
        def __init__(self, data, readonly=False):
            self.data = data
            self.readonly = readonly
            self.released = 0

        def __buffer__(self, flags):
            view = memoryview(self.data)
            return view.toreadonly() if self.readonly else view

        def __release_buffer__(self, view):
            self.released += 1
            view.release()

    return Exporter


needs_pep688 = pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 688 is 3.12+")


def numeric_exporters():
    """Exporters of numeric buffers that total() accepts, with their expected sum."""
    cases = {
        "bytes": lambda: bytes(range(10)),
        "bytearray": lambda: bytearray(range(20)),
        "memoryview-slice": lambda: memoryview(bytearray(range(30)))[3:27:4],
        "memoryview-negative-step": lambda: memoryview(bytes(range(9)))[::-2],
        "memoryview-cast-d": lambda: memoryview(array.array("d", [1, -2, 3, 4]).tobytes()).cast("d"),
        "memoryview-cast-2d": lambda: memoryview(bytearray(range(12))).cast("B", shape=[3, 4]),
        "memoryview-cast-i-2d": lambda: memoryview(array.array("i", range(-3, 3))).cast("B").cast("i", shape=[2, 3]),
        "memoryview-of-numpy-T": lambda: memoryview(numpy_array("float64", (3, 4)).T),
        "memoryview-of-ctypes": lambda: memoryview((ctypes.c_int16 * 4)(1, -2, 3, -4)),
        "mmap": lambda: mmap_of(bytes(range(64))),
        "memoryview-of-mmap-cast": lambda: memoryview(mmap_of(bytes(range(64)))).cast("q"),
        "ctypes-double-array": lambda: (ctypes.c_double * 4)(1.0, 2.0, -3.0, 4.5),
        "ctypes-int32-array": lambda: (ctypes.c_int32 * 3)(-7, 8, 9),
        "ctypes-long-array": lambda: (ctypes.c_long * 3)(-7, 8, 9),
        "ctypes-uint8-2d": lambda: ((ctypes.c_uint8 * 3) * 2)((1, 2, 3), (4, 5, 6)),
        "ctypes-bool-array": lambda: (ctypes.c_bool * 3)(True, False, True),
        "ctypes-float-scalar": lambda: ctypes.c_float(2.5),
        "ctypes-double-scalar": lambda: ctypes.c_double(-1.25),
        "ctypes-int64-scalar": lambda: ctypes.c_int64(-(2**40)),
        "numpy-scalar-float64": lambda: np.float64(1.5),
        "numpy-0d": lambda: np.array(7, dtype="int32"),
        "numpy-F-order": lambda: np.asfortranarray(numpy_array("float64", (3, 4))),
        "numpy-negative-strides": lambda: numpy_array("int64", (4, 5))[::-1, ::-2],
        "numpy-broadcast": lambda: np.broadcast_to(np.arange(3.0), (4, 3)),
        "numpy-empty": lambda: np.zeros((0, 3)),
        "numpy-4d": lambda: numpy_array("int16", (2, 3, 2, 2)).transpose(2, 0, 3, 1),
        "numpy-misaligned": lambda: np.frombuffer(bytearray(8 * 3 + 1), "f8", offset=1),
        "numpy-stride-12": lambda: np.lib.stride_tricks.as_strided(np.arange(5.0), (3,), (12,)),
        "testbuffer-2d": lambda: tb.ndarray(list(range(12)), shape=[3, 4], format="d"),
        "testbuffer-fortran": lambda: tb.ndarray(list(range(12)), shape=[3, 4], format="i", flags=tb.ND_FORTRAN),
        "testbuffer-pil": lambda: tb.ndarray(list(range(12)), shape=[3, 4], format="q", flags=tb.ND_PIL),
        "testbuffer-pil-negative": lambda: tb.ndarray(list(range(12)), shape=[3, 4], format="q", flags=tb.ND_PIL)[::-1],
        "testbuffer-scalar": lambda: tb.ndarray(3.5, shape=[], format="d"),
        "testbuffer-format-<d": lambda: tb.ndarray([1.0, 2.0, 3.0], shape=[3], format="<d"),
        "testbuffer-format-=i": lambda: tb.ndarray([1, -2, 3], shape=[3], format="=i"),
        "testbuffer-format-1d": lambda: tb.ndarray([1.0, 2.0], shape=[2], format="1d"),
        "testbuffer-format-@H": lambda: tb.ndarray([1, 2, 65535], shape=[3], format="@H"),
    }
    for code in array.typecodes:
        if code in "uw":
            continue
        init = [1.0, -2.0, 3.5] if code in "fd" else ([1, 2, 3] if code.isupper() else [1, -2, 3])
        cases[f"array-{code}"] = (lambda c=code, i=init: array.array(c, i))
    for dtype in NUMPY_NUMERIC:
        cases[f"numpy-{dtype}"] = (lambda d=dtype: numpy_array(d))
    return cases


NUMERIC = numeric_exporters()


@pytest.fixture(params=sorted(NUMERIC), ids=sorted(NUMERIC))
def numeric(request):
    return NUMERIC[request.param]()
