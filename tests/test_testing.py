"""gatewise.testing: the contract kit plugin authors run, checked on built-ins and on broken compressors."""

from __future__ import annotations

import pytest

from gatewise.errors import UsageError
from gatewise.plugin_manager import load_plugins
from gatewise.testing import check_compressor


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("contract")


@pytest.mark.parametrize("name", ["int8_dynamic", "int8_static"])
def test_builtin_compressors_meet_the_contract(workdir, name):
    report = check_compressor(load_plugins().get("compressor", name).component, workdir)
    assert report.decision_agreement >= 0.97
    assert report.output_bytes < report.parent_bytes


class WritesGarbage:
    name = "garbage"

    def compress(self, parent, output, calibration, params):
        output.write_bytes(b"not an onnx model")


class AcceptsAnything:
    name = "lenient"

    def check_params(self, params):
        return None

    def compress(self, parent, output, calibration, params):
        output.write_bytes(parent.read_bytes())


class WritesNothing:
    name = "lazy"

    def check_params(self, params):
        if params:
            raise UsageError(f"lazy: unknown parameter '{next(iter(params))}'")

    def compress(self, parent, output, calibration, params):
        pass


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (WritesGarbage(), "garbage: ONNX Runtime cannot load the output"),
        (AcceptsAnything(), "lenient: check_params accepted an unknown key"),
        (WritesNothing(), "lazy: compress\\(\\) wrote no file"),
    ],
)
def test_broken_compressors_are_named(workdir, component, message):
    with pytest.raises(AssertionError, match=message):
        check_compressor(component, workdir)
