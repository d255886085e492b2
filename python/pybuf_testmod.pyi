"""Type hints for pybuf_testmod: functions that take arrays through the buffer protocol.

Every array argument accepts any object that exports a buffer (numpy arrays, bytes,
bytearray, memoryview, array.array, mmap, ctypes, classes with __buffer__); the element
type and number of dimensions are checked at call time (TypeError), writable arguments
refuse read-only memory (BufferError).
"""

import sys
from typing import Any, Literal, Optional, Union

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    from typing_extensions import Buffer

def norm(x: Buffer) -> float:
    """Return the Euclidean norm of a 1-D float64 buffer."""

def row_sums(m: Buffer) -> list[float]:
    """Return the sum of each row of a 2-D float64 buffer, as a list."""

def histogram(image: Buffer) -> Buffer:
    """Return the 256-bin histogram of a 2-D uint8 image: a read-only 1-D uint64 buffer that
    numpy.asarray() and memoryview() read without a copy.
    """

def outer(a: Buffer, b: Buffer) -> Buffer:
    """Return the outer product of two 1-D float64 buffers: a writable 2-D float64 buffer."""

def scale(x: Buffer, factor: float, out: Buffer) -> None:
    """Write `x * factor` into `out`, a writable 1-D float64 buffer of the same length."""

def fill(out: Buffer, value: float) -> None:
    """Set every element of `out`, a writable float64 buffer of any shape, to `value`."""

def flatten(x: Buffer) -> list[float]:
    """Return the elements of a float64 buffer of any shape and layout, in C order, as a list."""

def scalar(x: Buffer) -> float:
    """Return the value of a 0-d float64 buffer (a numpy or ctypes scalar)."""

def centroid(points: Buffer) -> tuple[float, float]:
    """Return the mean (x, y) of a 1-D buffer of points: records with float64 fields x and y."""

def total(x: Buffer) -> Union[int, float, complex]:
    """Return the sum of every element of a numeric buffer of any shape, layout and dtype:
    an int for bool and integer dtypes, a float for float16/32/64, a complex for complex64/128.
    """

def tobytes(x: Buffer, order: Literal["C", "F"] = "C") -> bytes:
    """Return the raw bytes of every element of any buffer, in C (`'C'`) or Fortran (`'F'`)
    order, like `memoryview(x).tobytes(order)`.
    """

def describe(x: Buffer) -> dict[str, Any]:
    """Return what pybuf sees of a buffer: format, shape, strides, itemsize, ndim, readonly,
    c_contiguous, f_contiguous, element_kind and alignment.
    """

def mean(x: Buffer) -> float:
    """Return the mean of every element of a numeric buffer (int8..uint64, float32, float64) of
    any shape and layout, as a float.
    """

def count_true(mask: Buffer) -> int:
    """Return how many items of a bool buffer of any shape are true (any non-zero byte, as numpy
    counts them).
    """

def gray(image: Buffer) -> Buffer:
    """Return the luma of an H×W×3 uint8 RGB image (ITU-R 601, rounded): a 2-D uint8 buffer."""

def frame_scores(frames: Buffer) -> list[float]:
    """Return the score of each frame of a 1-D array of numpy's packed frame records (any slice)."""

def parse_frames(data: Buffer) -> list[tuple[int, float, int, int, int]]:
    """Return the packed frame records in raw bytes (bytes, bytearray, mmap, ...) as a list of
    (frame, score, x, y, label) tuples.
    """

class ExportedBuffer:
    """Rust-owned memory exported to Python (the class is pybuf.ExportedBuffer): a buffer,
    a DLPack producer and an array-interface exporter."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def strides(self) -> tuple[int, ...]: ...
    @property
    def format(self) -> str: ...
    @property
    def itemsize(self) -> int: ...
    @property
    def ndim(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def views(self) -> int: ...
    @property
    def __array_interface__(self) -> dict[str, Any]: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def tolist(self) -> Any: ...
    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[tuple[int, int]] = None,
        dl_device: Optional[tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any: ...
    def __dlpack_device__(self) -> tuple[int, int]: ...

def export_copy(
    x: Buffer, writable: bool = False, layout: Literal["C", "F", "reversed", "strided"] = "C"
) -> ExportedBuffer:
    """Return a Rust-owned copy of a numeric buffer as a pybuf.ExportedBuffer: same dtype, shape
    and values, laid out in memory in `layout` order.
    """

def export_records(
    kind: Literal["particle", "point", "segment", "packed"],
    n: int,
    writable: bool = False,
    strided: bool = False,
) -> ExportedBuffer:
    """Return `n` records of kind 'particle', 'point', 'segment' or 'packed' as a
    pybuf.ExportedBuffer, with values computed from the index.
    """

def export_big_endian(values: list[float]) -> ExportedBuffer:
    """Return float64 values stored big-endian (format '>d') as a pybuf.ExportedBuffer."""

def export_vectors(x: Buffer, writable: bool = False) -> ExportedBuffer:
    """Return the rows of an N×3 float32 buffer as N items of type [f32; 3] (format '(3)f'), as a
    pybuf.ExportedBuffer.
    """

def outer_array(a: Buffer, b: Buffer) -> Any:
    """Return the outer product of two 1-D float64 buffers as a writable numpy.ndarray that
    shares Rust-owned memory (numpy is imported at run time).
    """
