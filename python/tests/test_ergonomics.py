"""The easy path of pybuf as a Python caller sees it: one body for every dtype (mean), views or
copies (total, mean on misaligned and strided data), bool masks with any byte (count_true),
RGB images as pixels (gray), numpy's packed records in every slice (frame_scores) and records
from raw bytes (parse_frames). Expected values come from numpy."""

import array
import ctypes
import mmap

import numpy as np
import pytest

import _testbuffer as tb
import pybuf_testmod as m
from conftest import NUMERIC, mmap_of, values

# ---- mean: pybuf::dispatch! over the native integer and float dtypes ------------------------

MEAN_KINDS = set("bBhHiIlLqQfd")


def mean_cases():
    """NUMERIC exporters whose items are native integers or float32/64."""
    out = {}
    for name, make in NUMERIC.items():
        x = make()
        with memoryview(x) as view:
            fmt = view.format.lstrip("@=<")  # '<l' is int32, still a native integer
        if fmt in MEAN_KINDS:
            out[name] = make
    return out


MEAN = mean_cases()


@pytest.mark.parametrize("name", sorted(MEAN))
def test_mean_of_every_numeric_layout(name):
    x = MEAN[name]()
    items = np.array(values(x), dtype=np.float64)
    if items.size == 0:
        pytest.skip("no items")
    assert m.mean(x) == pytest.approx(float(np.mean(items)))


def test_mean_cases_cover_every_kind():
    assert len(MEAN) > 30
    for dtype in ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                  "float32", "float64"]:
        assert f"numpy-{dtype}" in MEAN


def test_mean_of_record_fields_and_misaligned_data():
    rec = np.zeros(5, dtype=[("tag", "u1"), ("x", "f8")])
    rec["x"] = [1, 2, 3, 4, 10]
    assert m.mean(rec["x"]) == 4.0  # stride 9: a copy
    mis = np.frombuffer(bytearray(8 * 4 + 1), "f8", offset=1)
    mis[:] = [1, 2, 3, 6]
    assert m.mean(mis) == 3.0


# ---- count_true: pybuf::Bool ----------------------------------------------------------------

@pytest.mark.parametrize(
    "make",
    [
        lambda: np.array([True, False, True]),
        lambda: np.frombuffer(bytes([0, 1, 2, 255, 0, 7]), bool).reshape(2, 3),
        lambda: np.frombuffer(bytes([0, 1, 2, 255, 0, 7]), bool)[::-2],
        lambda: (ctypes.c_bool * 4)(True, False, True, True),
        lambda: tb.ndarray([True, False, True, False], shape=[2, 2], format="?", flags=tb.ND_PIL),
        lambda: np.zeros((0, 3), bool),
    ],
    ids=["numpy", "non-canonical-bytes", "strided", "ctypes", "pil", "empty"],
)
def test_count_true_counts_like_numpy(make):
    x = make()
    with memoryview(x) as view:
        expected = sum(b != 0 for b in view.tobytes())
    assert m.count_true(x) == expected


def test_count_true_after_python_wrote_a_two():
    mask = np.array([True, False, False])
    mask.view(np.uint8)[1] = 2
    assert m.count_true(mask) == np.count_nonzero(mask) == 2
    # Rust's bool refuses the same array
    with pytest.raises(ValueError, match="expected a valid bool"):
        m.total(mask)


# ---- gray: H×W×3 uint8 as Buffer2<[u8; 3]> ----------------------------------------------------

def luma(img):
    rgb = np.asarray(img, dtype=np.uint32)
    return ((299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000).astype(np.uint8)


def image():
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "make",
    [
        image,
        lambda: image()[::2, ::-1],
        lambda: image()[1:4, 2:],
        lambda: np.ascontiguousarray(image()[..., ::-1]),
        lambda: image()[:0],
        lambda: memoryview(image()),
        lambda: tb.ndarray(image().ravel().tolist(), shape=[6, 5, 3], format="B", flags=tb.ND_PIL),
        lambda: (((ctypes.c_uint8 * 3) * 5) * 6).from_buffer_copy(image().tobytes()),
    ],
    ids=["image", "strided", "crop", "bgr-copy", "empty", "memoryview", "pil", "ctypes"],
)
def test_gray_of_rgb_images(make):
    img = make()
    with memoryview(img) as view:
        # tobytes() follows any layout (suboffsets too) in C order
        expected = luma(np.frombuffer(view.tobytes(), np.uint8).reshape(view.shape))
    result = np.asarray(m.gray(img))
    assert result.dtype == np.uint8
    assert result.shape == expected.shape
    assert result.tolist() == expected.tolist()


# ---- frame_scores: numpy's packed records in every slice ---------------------------------------

FRAME = np.dtype([("frame", "u4"), ("score", "f8"), ("x", "u2"), ("y", "u2"), ("label", "u1")])


def frames(n=9):
    base = np.zeros(n, FRAME)
    base["frame"] = np.arange(n) * 1000 + 7
    base["score"] = np.linspace(-1, 1, n)
    base["x"] = np.arange(n) * 3
    base["label"] = np.arange(n) % 4
    return base


@pytest.mark.parametrize("index", [
    slice(None), slice(None, 2), slice(None, 1), slice(None, 0), slice(None, None, 4),
    slice(None, None, -3), slice(5, 6),
], ids=["all", ":2", ":1", ":0", "::4", "::-3", "5:6"])
def test_frame_scores_of_every_slice(index):
    base = frames()
    x = base[index]
    assert m.frame_scores(x) == x["score"].tolist()


def test_numpy_writes_native_formats_for_short_slices():
    # the case pybuf used to refuse: fields ending at 17 bytes, native rules padding to 20
    with memoryview(frames()[:1]) as view:
        assert view.format == "T{I:frame:=d:score:@H:x:H:y:B:label:}"
        assert view.itemsize == 17


# ---- parse_frames: records from raw bytes ------------------------------------------------------

@pytest.mark.parametrize(
    "make",
    [
        lambda raw: raw,
        lambda raw: bytearray(raw),
        lambda raw: mmap_of(raw),
        lambda raw: memoryview(b"x" + raw)[1:],
        lambda raw: array.array("B", raw),
        lambda raw: np.frombuffer(raw, np.uint8).reshape(-1, 17),
        lambda raw: b"",
    ],
    ids=["bytes", "bytearray", "mmap", "offset-view", "array", "numpy-2d", "empty"],
)
def test_parse_frames_reads_like_frombuffer(make):
    raw = frames().tobytes()
    data = make(raw)
    expected = [tuple(r) for r in np.frombuffer(bytes(memoryview(data)), FRAME).tolist()]
    assert m.parse_frames(data) == expected
