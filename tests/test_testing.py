"""gatewise.testing, the pytest plugin authors test their compressors with: it is loaded through
the pytest11 entry point without heavy imports, and it catches broken compressors, each named
with the part of the contract it broke."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gatewise.testing
from gatewise.errors import UsageError
from gatewise.testing import check_compressor

pytest_plugins = ["pytester"]


def test_pytest_loads_the_kit_through_its_entry_point(request):
    assert request.config.pluginmanager.get_plugin("gatewise") is gatewise.testing


def test_loading_the_kit_imports_nothing_heavy():
    # Every pytest run in the environment imports it, gatewise's own suite included.
    heavy = ("torch", "onnx", "onnxruntime", "prefect", "pandas", "numpy")
    code = f"import sys, gatewise.testing; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class Strict:
    def check_params(self, params):
        if params:
            raise UsageError(f"{self.name}: unknown parameter '{next(iter(params))}'")


class WritesGarbage(Strict):
    name = "garbage"

    def compress(self, parent, output, calibration, params):
        output.write_bytes(b"not an onnx model")


class WritesNothing(Strict):
    name = "lazy"

    def compress(self, parent, output, calibration, params):
        pass


class AcceptsAnything:
    name = "lenient"

    def check_params(self, params):
        return None


class ReturnsAValue:
    name = "returns"

    def check_params(self, params):
        if set(params) - {"sparsity"}:
            raise UsageError("returns: unknown parameter")
        return params.get("sparsity", 0.3)


class DeclaresNothing:
    name = "undeclared"


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (WritesGarbage(), "valid ONNX: compressor 'garbage' wrote an invalid ONNX model"),
        (WritesNothing(), "valid ONNX: compressor 'lazy' failed in its own process: GatewiseError: lazy wrote no file"),
        (AcceptsAnything(), "parameters: compressor 'lenient' check_params accepted an unknown key"),
        (ReturnsAValue(), "parameters: compressor 'returns' check_params returned 0.3; it must return None"),
        (DeclaresNothing(), "parameters: compressor 'undeclared' has no check_params"),
    ],
)
def test_broken_compressors_are_named_with_the_broken_part(tmp_path, component, message):
    with pytest.raises(AssertionError, match=message):
        check_compressor(component, tmp_path)


# A throwaway author's test file: three bad compressors held to the contract by subclassing it.
BAD_COMPRESSORS = '''
import time

import onnx
from onnx import helper, numpy_helper
import numpy as np

from gatewise.errors import UsageError
from gatewise.testing import CompressorContract


class Declared:
    def check_params(self, params):
        if params:
            raise UsageError(f"{self.name}: unknown parameter")


class Halves(Declared):
    """Every probability becomes 0.5: decisions at 0.5 look fine to a lenient eye."""

    name = "halves"

    def compress(self, parent, output, calibration, params):
        model = onnx.load(str(parent))
        out = model.graph.output[0].name
        for node in model.graph.node:
            node.output[:] = ["raw" if o == out else o for o in node.output]
        model.graph.initializer.extend([numpy_helper.from_array(np.array(0, np.float32), "zero"),
                                        numpy_helper.from_array(np.array(0.5, np.float32), "half")])
        model.graph.node.extend([helper.make_node("Mul", ["raw", "zero"], ["nothing"]),
                                 helper.make_node("Add", ["nothing", "half"], [out])])
        onnx.save(model, str(output))


class Raises(Declared):
    name = "raises"

    def compress(self, parent, output, calibration, params):
        raise RuntimeError("the compressor's own bug")


class Hangs(Declared):
    name = "hangs"

    def compress(self, parent, output, calibration, params):
        time.sleep(3600)


class TestHalves(CompressorContract):
    compressor = Halves()


class TestRaises(CompressorContract):
    compressor = Raises()


class TestHangs(CompressorContract):
    compressor = Hangs()
    timeout_s = 3
'''


def test_the_kit_fails_bad_compressors_by_name_without_hanging(pytester):
    pytester.makepyfile(test_bad_compressors=BAD_COMPRESSORS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    # halves: only fidelity fails; raises and hangs: the run and every check of its output fail.
    result.assert_outcomes(passed=2 + 6 + 2, failed=1 + 5 + 5)
    result.stdout.fnmatch_lines([
        "*AssertionError: score fidelity: compressor 'halves' moved the parent's probabilities beyond the "
        "accuracy gate's limits: max |p - p_parent| 0.* > max_score_difference 0.25; q99 |p - p_parent| 0.* "
        "> max_quantile_score_difference 0.1*",
    ])
    result.stdout.fnmatch_lines(["*AssertionError: run (timeout 120 s): compressor 'raises' failed in its own process: RuntimeError: the compressor's own bug"])
    result.stdout.fnmatch_lines(["*AssertionError: run (timeout 3 s): compressor 'hangs' failed in its own process: timed out after 3 s*"])
    result.stdout.fnmatch_lines(["*FAILED*TestHalves::test_keeps_score_fidelity*"])
    result.stdout.fnmatch_lines(["*halves: batch-1 p50 * ms, parent * ms (x*)*"])
