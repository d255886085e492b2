"""The type stub pybuf_testmod.pyi: it parses, is installed with the module, names every
function with the runtime signature and docstring, and type-checks real usage with mypy."""

import ast
import importlib.util
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pybuf_testmod as m

STUB_SOURCE = Path(__file__).resolve().parents[1] / "pybuf_testmod.pyi"


def stub_functions():
    tree = ast.parse(STUB_SOURCE.read_text(), filename=str(STUB_SOURCE))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def runtime_functions():
    return {name: obj for name, obj in vars(m).items()
            if not name.startswith("_") and callable(obj) and not isinstance(obj, type)}


def test_stub_names_every_function():
    assert sorted(stub_functions()) == sorted(runtime_functions())


def test_stub_is_installed_with_the_module():
    spec = importlib.util.find_spec("pybuf_testmod")
    package = Path(spec.origin).parent
    installed = package / "__init__.pyi"
    assert installed.read_text() == STUB_SOURCE.read_text()
    assert (package / "py.typed").exists()


def signature_of_stub(node):
    args = node.args
    params = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults):
        kind = "POSITIONAL_ONLY" if arg in args.posonlyargs else "POSITIONAL_OR_KEYWORD"
        params.append((arg.arg, kind, None if default is None else ast.literal_eval(default)))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append((arg.arg, "KEYWORD_ONLY", None if default is None else ast.literal_eval(default)))
    return params


def signature_at_runtime(func):
    return [
        (p.name, p.kind.name, None if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(func).parameters.values()
    ]


@pytest.mark.parametrize("name", sorted(runtime_functions()))
def test_stub_signature_matches_runtime(name):
    node = stub_functions()[name]
    assert signature_of_stub(node) == signature_at_runtime(runtime_functions()[name])


@pytest.mark.parametrize("name", sorted(runtime_functions()))
def test_stub_docstring_is_the_runtime_summary(name):
    # The stub's docstring is the first paragraph of the runtime docstring (help() and IDEs
    # show the same text).
    stub_doc = ast.get_docstring(stub_functions()[name])
    runtime_doc = inspect.getdoc(runtime_functions()[name])
    assert " ".join(stub_doc.split()) == " ".join(runtime_doc.split("\n\n")[0].split())


@pytest.mark.parametrize("name", sorted(stub_functions()))
def test_array_parameters_are_annotated_buffer(name):
    node = stub_functions()[name]
    array_params = {"x", "m", "image", "out", "points", "a", "b", "mask", "frames", "data"}
    for arg in node.args.args:
        if arg.arg in array_params:
            assert isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Buffer", arg.arg


def test_buffer_protocol_class_of_this_version():
    # The stub imports collections.abc.Buffer on 3.12+, typing_extensions.Buffer before.
    if sys.version_info >= (3, 12):
        from collections.abc import Buffer
        import numpy as np
        assert isinstance(np.zeros(2), Buffer)
    else:
        from typing_extensions import Buffer
    assert isinstance(bytearray(), Buffer)
    assert isinstance(memoryview(b""), Buffer)
    assert not isinstance([1.0], Buffer)


def test_mypy_accepts_good_usage_and_flags_bad_usage(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "good.py").write_text(textwrap.dedent("""
        import array
        import ctypes
        import mmap
        from typing import List, Tuple, Union

        import pybuf_testmod as m

        a = array.array("d", [1.0, 2.0])
        n: float = m.norm(a)
        r: List[float] = m.row_sums(memoryview(bytes(16)).cast("d", shape=[1, 2]))
        h: memoryview = memoryview(m.histogram(memoryview(bytearray(4)).cast("B", shape=[2, 2])))
        o: List[float] = m.row_sums(m.outer(a, a))
        m.scale(a, 2.0, out=array.array("d", [0.0, 0.0]))
        m.fill(mmap.mmap(-1, 8), 1.0)
        f: List[float] = m.flatten((ctypes.c_double * 2)())
        s: float = m.scalar(b"12345678")
        c: Tuple[float, float] = m.centroid(b"")
        t: Union[int, float, complex] = m.total(a)
        raw: bytes = m.tobytes(a, "F")
        info = m.describe(a)
        print(info["format"])
    """))
    (tmp_path / "bad.py").write_text(textwrap.dedent("""
        import pybuf_testmod as m

        m.norm([1.0, 2.0])
        m.tobytes(b"", "K")
        text: str = m.norm(b"")
        m.scale(b"", 2.0)
    """))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--strict", "--no-error-summary",
         "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}",
         "good.py", "bad.py"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in lines if line.startswith("good.py")], result.stdout
    bad_lines = sorted({int(line.split(":")[1]) for line in lines if line.startswith("bad.py")})
    assert bad_lines == [4, 5, 6, 7], result.stdout
