"""pybuf.ExportedBuffer seen from Python: attributes, len, tolist and repr, the array interface
and DLPack, each compared with what numpy and memoryview make of the same export.

Expected values come from numpy (np.asarray(e), which reads the buffer protocol) and from
memoryview, never from pybuf.
"""

import gc
import sys

import numpy as np
import pytest

import pybuf_testmod as m
from conftest import NUMPY_NUMERIC, numpy_array

LAYOUTS = ["C", "F", "reversed", "strided"]
SHAPES = [(2, 3), (5,), (), (0, 3), (3, 0), (2, 1, 3)]
RECORDS = ["particle", "point", "segment", "packed"]
# numpy 2.1 asks __dlpack__ for versioned capsules (max_version) and accepts copy=
NUMPY_DLPACK_1 = np.lib.NumpyVersion(np.__version__) >= "2.1.0"
needs_versioned = pytest.mark.skipif(not NUMPY_DLPACK_1, reason="numpy < 2.1 asks for legacy DLPack")


def typed(value):
    """A value with the type of every scalar in it, so that True == 1 and 1.0 == 1 fail."""
    if isinstance(value, np.ndarray):  # numpy gives sub-array fields of records as arrays
        return typed(value.tolist())
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, tuple):
        return tuple(typed(v) for v in value)
    return (type(value).__name__, value)


def expected_values(dtype, shape):
    return numpy_array(dtype, shape) if shape else numpy_array(dtype, (1,)).reshape(())


class Interface:
    """An object that offers only the array interface (no buffer protocol, no DLPack)."""

    def __init__(self, interface):
        self.__array_interface__ = interface


class LegacyConsumer:
    """Makes numpy.from_dlpack take the legacy path: __dlpack__ without max_version."""

    def __init__(self, exported):
        self.exported = exported

    def __dlpack__(self, **kwargs):
        return self.exported.__dlpack__()

    def __dlpack_device__(self):
        return self.exported.__dlpack_device__()


def pointer(array):
    return array.__array_interface__["data"][0]


# ---- attributes, len, bool ---------------------------------------------------------------

@pytest.mark.parametrize("writable", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", NUMPY_NUMERIC)
def test_attributes_match_memoryview(dtype, layout, writable):
    e = m.export_copy(numpy_array(dtype), writable=writable, layout=layout)
    with memoryview(e) as view:
        assert e.shape == view.shape and isinstance(e.shape, tuple)
        assert e.strides == view.strides and isinstance(e.strides, tuple)
        assert e.format == view.format
        assert e.itemsize == view.itemsize
        assert e.ndim == view.ndim
        assert e.nbytes == view.nbytes
        assert e.readonly == view.readonly == (not writable)
    a = np.asarray(e)
    assert (e.shape, e.strides, e.nbytes) == (a.shape, a.strides, a.nbytes)
    assert isinstance(e, m.ExportedBuffer) and type(e).__module__ == "pybuf"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_len_and_bool_like_numpy_and_memoryview(shape, layout):
    e = m.export_copy(expected_values("float64", shape), layout=layout)
    a = np.asarray(e)
    if shape:
        assert len(e) == len(a) == shape[0]
    else:
        with pytest.raises(TypeError, match="unsized"):
            len(a)
        with pytest.raises(TypeError, match="unsized"):
            len(e)
        # memoryview's truth value of 0-d memory changed in 3.12 (it has no length since);
        # an export is true there, as a 0-d memoryview was before
        assert bool(e)
        return
    with memoryview(e) as view:
        assert bool(e) == bool(view) == (shape[0] != 0)


# ---- tolist and repr ---------------------------------------------------------------------

@pytest.mark.parametrize("writable", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", NUMPY_NUMERIC)
def test_tolist_matches_numpy_and_memoryview(dtype, layout, writable):
    x = numpy_array(dtype)
    e = m.export_copy(x, writable=writable, layout=layout)
    values = typed(e.tolist())
    assert values == typed(np.asarray(e).tolist()) == typed(x.tolist())
    with memoryview(e) as view:
        try:
            from_view = view.tolist()
        except NotImplementedError:  # memoryview does not unpack 'e', 'Zf', 'Zd'
            return
    assert values == typed(from_view)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float64", "int16", "bool", "complex64"])
def test_tolist_every_shape(dtype, shape, layout):
    x = expected_values(dtype, shape)
    e = m.export_copy(x, layout=layout)
    assert typed(e.tolist()) == typed(np.asarray(e).tolist()) == typed(x.tolist())


@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("kind", RECORDS)
def test_tolist_of_records_as_numpy_gives_them(kind, strided):
    e = m.export_records(kind, 5, strided=strided)
    numpy_values = np.asarray(e).tolist()
    assert isinstance(numpy_values[0], tuple)
    # numpy gives sub-array fields as arrays, pybuf as lists: typed() compares both as lists
    assert typed(e.tolist()) == typed(numpy_values)


def test_tolist_of_sub_arrays_and_big_endian_data():
    rows = np.arange(12, dtype="float32").reshape(4, 3)
    v = m.export_vectors(rows)
    assert v.shape == (4,) and v.format == "(3)f"
    assert typed(v.tolist()) == typed(np.asarray(v).tolist()) == typed(rows.tolist())
    b = m.export_big_endian([1.5, -2.0, 1e300])
    assert b.format == ">d" and np.asarray(b).dtype == np.dtype(">f8")
    assert typed(b.tolist()) == typed(np.asarray(b).tolist()) == typed([1.5, -2.0, 1e300])


def test_repr_shows_values_dtype_shape_and_access():
    e = m.export_copy(np.arange(6.0).reshape(2, 3))
    assert repr(e) == (
        "pybuf.ExportedBuffer([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], dtype=float64, "
        "shape=(2, 3), readonly)"
    )
    w = m.export_copy(np.array(7, dtype="int32"), writable=True)
    assert repr(w) == "pybuf.ExportedBuffer(7, dtype=int32, shape=(), writable)"
    for dtype in NUMPY_NUMERIC:
        e = m.export_copy(numpy_array(dtype))
        assert f"dtype={np.asarray(e).dtype.name}," in repr(e)
    assert "dtype='>f8'" in repr(m.export_big_endian([1.0]))
    assert "dtype=('<f4', (3,))" in repr(m.export_vectors(np.zeros((2, 3), "float32")))
    r = m.export_records("point", 2)
    assert repr(r) == (
        "pybuf.ExportedBuffer([(0.5, -0.0), (1.5, -1.0)], "
        "dtype=[('x', '<f8'), ('y', '<f8')], shape=(2,), readonly)"
    )


def test_repr_summarizes_large_exports_like_numpy():
    e = m.export_copy(np.arange(2000.0))
    text = repr(e)
    assert text.startswith("pybuf.ExportedBuffer([0.0, 1.0, 2.0, ..., 1997.0, 1998.0, 1999.0], ")
    big = m.export_copy(np.arange(3000).reshape(30, 100))
    assert repr(big).count("...") == 1 + 6  # the first axis once, then each of the 6 rows shown
    small = m.export_copy(np.arange(1000.0))
    assert "..." not in repr(small)


# ---- the array interface -----------------------------------------------------------------

@pytest.mark.parametrize("writable", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", NUMPY_NUMERIC)
def test_array_interface_matches_numpys_own(dtype, layout, writable):
    x = numpy_array(dtype)
    e = m.export_copy(x, writable=writable, layout=layout)
    ours = e.__array_interface__
    theirs = np.asarray(e).__array_interface__
    for key in ("shape", "strides", "typestr", "descr", "version"):
        assert ours[key] == theirs[key], key
    assert e.views == 1  # the dict's pin
    a = np.asarray(Interface(ours))
    del ours
    assert pointer(a) == theirs["data"][0]
    assert np.shares_memory(a, np.asarray(e))
    assert typed(a.tolist()) == typed(x.tolist())
    # read-only stays read-only; a strided bool export hides elements Rust would not validate
    assert a.flags.writeable == (writable and not (layout == "strided" and dtype == "bool"))
    assert e.views == 1  # numpy's array holds the pin
    del a
    gc.collect()
    assert e.views == 0


@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("kind", RECORDS)
def test_array_interface_of_records_matches_numpys_own(kind, strided):
    e = m.export_records(kind, 4, strided=strided)
    ours = e.__array_interface__
    theirs = np.asarray(e).__array_interface__
    for key in ("shape", "strides", "typestr", "descr", "version"):
        assert ours[key] == theirs[key], key
    a = np.asarray(Interface(ours))
    assert pointer(a) == theirs["data"][0] and a.itemsize == e.itemsize
    # numpy turns the descr's padding entries into void fields (it does so for its own
    # arrays too); the named fields read the same values
    for name in np.asarray(e).dtype.names:
        assert typed(a[name].tolist()) == typed(np.asarray(e)[name].tolist())


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_array_interface_every_shape(shape):
    x = expected_values("float64", shape)
    for layout in LAYOUTS:
        e = m.export_copy(x, layout=layout)
        a = np.asarray(Interface(e.__array_interface__))
        assert a.shape == shape and a.strides == np.asarray(e).strides
        assert typed(a.tolist()) == typed(x.tolist())


def test_array_interface_sub_arrays_fold_into_the_shape():
    rows = np.arange(12, dtype="float32").reshape(4, 3)
    v = m.export_vectors(rows)
    ai = v.__array_interface__
    assert ai["shape"] == (4, 3) and ai["typestr"] == "<f4" and ai["strides"] is None
    assert np.asarray(Interface(ai)).tolist() == rows.tolist()


def test_numpy_functions_accept_the_interface_and_writes_are_shared():
    e = m.export_copy(np.arange(6.0).reshape(2, 3), writable=True, layout="F")
    w = Interface(e.__array_interface__)
    assert np.sum(w) == 15.0
    assert np.add(w, 1).tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    a = np.asarray(w)
    a[1, 2] = 50.0
    assert e.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 50.0]]
    with memoryview(e) as view:
        view[0, 0] = -1.0
    assert a[0, 0] == -1.0


def test_the_pin_keeps_the_memory_exported_until_numpy_lets_go():
    e = m.export_copy(np.arange(4.0))
    ai = e.__array_interface__
    pin = ai["data"]
    assert type(pin).__name__ == "ExportPin" and type(pin).__module__ == "pybuf"
    with memoryview(pin) as raw:
        assert raw.nbytes == 32 and raw.readonly and raw.format == "B"
    refs = sys.getrefcount(pin)
    a = np.asarray(Interface(ai))
    after = sys.getrefcount(pin)
    assert after == refs + 1  # numpy's array holds the pin itself...
    assert a.base is pin  # ...as its base
    del ai, pin
    assert e.views == 1
    b = a[::2]  # a view of the view keeps it too
    del a
    gc.collect()
    assert e.views == 1
    del b
    gc.collect()
    assert e.views == 0


def test_negative_strides_use_the_offset():
    e = m.export_copy(np.arange(6.0).reshape(2, 3), layout="reversed")
    ai = e.__array_interface__
    assert ai["offset"] == 40 and ai["strides"] == (-24, -8)
    assert np.asarray(Interface(ai)).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


# ---- DLPack ------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", NUMPY_NUMERIC)
def test_from_dlpack_shares_writable_memory(dtype, layout):
    x = numpy_array(dtype)
    e = m.export_copy(x, writable=True, layout=layout)
    a = np.from_dlpack(e)
    assert np.shares_memory(a, np.asarray(e))
    assert a.dtype == np.asarray(e).dtype and a.strides == np.asarray(e).strides
    assert typed(a.tolist()) == typed(x.tolist())
    assert e.views == 1
    # numpy before 2.1 takes legacy capsules, which it always imports read-only
    assert a.flags.writeable == NUMPY_DLPACK_1
    if a.flags.writeable:
        a[1, 2] = a[0, 0]
        assert np.asarray(e)[1, 2] == x[0, 0]
    through_buffer = np.asarray(e)  # another consumer, through the buffer protocol
    through_buffer[0, 1] = through_buffer[1, 1]
    assert a[0, 1] == x[1, 1]
    del a, through_buffer
    gc.collect()
    assert e.views == 0


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_from_dlpack_every_shape(shape, layout):
    x = expected_values("int32", shape)
    e = m.export_copy(x, writable=True, layout=layout)
    a = np.from_dlpack(e)
    assert a.shape == shape and a.strides == np.asarray(e).strides
    assert pointer(a) == pointer(np.asarray(e))
    assert a.tolist() == x.tolist()
    del a
    assert e.views == 0


@needs_versioned
def test_from_dlpack_of_read_only_memory_is_read_only():
    e = m.export_copy(np.arange(5.0))
    a = np.from_dlpack(e)
    assert not a.flags.writeable and np.shares_memory(a, np.asarray(e))
    with pytest.raises(ValueError):
        a[0] = 1.0


def test_legacy_capsules_of_writable_memory_and_refusal_for_read_only():
    e = m.export_copy(np.arange(5.0), writable=True)
    a = np.from_dlpack(LegacyConsumer(e))
    # numpy marks every legacy import read-only: it cannot tell
    assert e.views == 1
    assert np.shares_memory(a, np.asarray(e))
    del a
    assert e.views == 0
    r = m.export_copy(np.arange(5.0))
    with pytest.raises(BufferError, match=r"max_version >= \(1, 0\).*read-only"):
        np.from_dlpack(LegacyConsumer(r))
    with pytest.raises(BufferError, match="got max_version=None"):
        r.__dlpack__()
    with pytest.raises(BufferError, match=r"got max_version=\(0, 8\)"):
        r.__dlpack__(max_version=(0, 8))
    assert r.views == 0


def test_capsules_are_named_by_version_and_count_until_deleted():
    e = m.export_copy(np.arange(3.0), writable=True)
    assert e.__dlpack_device__() == (1, 0)
    legacy = e.__dlpack__()
    versioned = e.__dlpack__(max_version=(1, 0))
    newer = e.__dlpack__(max_version=(2, 3))  # the newest we know: still 1.x
    assert '"dltensor"' in repr(legacy) and '"dltensor_versioned"' in repr(versioned)
    assert '"dltensor_versioned"' in repr(newer)
    assert e.views == 3
    refs = sys.getrefcount(e)
    del legacy, versioned, newer  # never consumed: the capsules call the deleter
    assert e.views == 0 and sys.getrefcount(e) == refs


def test_dlpack_arguments_per_the_array_api():
    e = m.export_copy(np.arange(3.0), writable=True)
    assert e.__dlpack__(dl_device=(1, 0), stream=None, copy=False) is not None
    with pytest.raises(BufferError, match=r"\(2, 0\) \(kDLCUDA\)"):
        e.__dlpack__(dl_device=(2, 0))
    with pytest.raises(BufferError, match="dl_device"):
        e.__dlpack__(dl_device=(1, 3), copy=True)
    with pytest.raises(ValueError, match="stream=None.*got stream=1"):
        e.__dlpack__(stream=1)
    with pytest.raises(TypeError):
        e.__dlpack__(max_version=[1, 0])
    with pytest.raises(TypeError):
        e.__dlpack__(None)  # keyword-only
    gc.collect()
    assert e.views == 0


def test_dlpack_copy_is_owned_by_the_consumer():
    r = m.export_copy(np.arange(6.0).reshape(2, 3), layout="reversed")
    c = r.__dlpack__(max_version=(1, 0), copy=True)
    assert r.views == 0  # a copy keeps nothing of the export
    del c
    if NUMPY_DLPACK_1:
        a = np.from_dlpack(r, copy=True)
        assert not np.shares_memory(a, np.asarray(r)) and a.flags.writeable
        assert a.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and r.views == 0
    # a copy is writable, so even a legacy capsule of read-only memory may carry one
    assert r.__dlpack__(copy=True) is not None


@pytest.mark.parametrize("make, reason", [
    (lambda: m.export_records("point", 2), "records"),
    (lambda: m.export_big_endian([1.0]), "byte order"),
])
def test_dlpack_refuses_items_without_a_dlpack_type(make, reason):
    e = make()
    with pytest.raises(BufferError, match=f"expected elements DLPack can describe.*{reason}"):
        e.__dlpack__(max_version=(1, 0))
    assert e.views == 0


def test_dlpack_sub_arrays_become_axes():
    rows = np.arange(12, dtype="float32").reshape(4, 3)
    v = m.export_vectors(rows, writable=True)
    a = np.from_dlpack(v)
    assert a.shape == (4, 3) and a.tolist() == rows.tolist() and np.shares_memory(a, np.asarray(v))


# ---- numpy results from Rust -------------------------------------------------------------

def test_outer_array_is_a_numpy_array_on_rust_memory():
    a = m.outer_array(np.arange(3.0), np.array([1.0, 2.0]))
    assert type(a) is np.ndarray and a.flags.writeable
    assert a.tolist() == np.outer(np.arange(3.0), [1.0, 2.0]).tolist()
    owner = a.base.obj  # numpy's memoryview of the export
    assert isinstance(owner, m.ExportedBuffer) and owner.views == 1
    assert np.shares_memory(a, np.asarray(owner))
