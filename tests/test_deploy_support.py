"""Helpers shared by the deployment tests: a small real ONNX model, a gated and promoted version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gatewise.gate_names import MANDATORY_GATES
from gatewise.plugin_manager import Plugins, build_plugin_manager
from gatewise.registry import Registry
from gatewise.types import Candidate, GateResult, PluginInfo, sha256_file

GATES = MANDATORY_GATES
PLUGIN = PluginInfo(name="torch_onnx_export", version="0", distribution="gatewise", code_sha256="c" * 64)
EVIDENCE = {"policy_digest": "d" * 64, "data": {"train": "1" * 64}, "champion_version": None}


def tiny_onnx(path: Path, weight: float) -> Path:
    """A real two-feature logistic model in ONNX, with the input contract stamped in its metadata."""
    import onnx
    from onnx import TensorProto, helper

    from gatewise.encoding import InputSpec
    from gatewise.scoring import stamp_input_spec

    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 1], [weight, -0.5])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["logit"]), helper.make_node("Sigmoid", ["logit"], ["p"]),
         helper.make_node("Flatten", ["p"], ["prob_positive"], axis=0)],
        "tiny", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("prob_positive", TensorProto.FLOAT, None)], [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    stamp_input_spec(path, InputSpec(numeric=("age",), numeric_fill=(30.0,), categorical=(("sex", ("Female", "Male")),)))
    return path


def register(registry: Registry, tmp: Path, run: str, weight: float, failing: str | None = None) -> str:
    path = tiny_onnx(tmp / run / "model.onnx", weight)
    registry.record_run(run, "arrests", {}, "a" * 64, {"dataset": "e" * 64}, [])
    version = registry.register_candidate(run, "arrests", Candidate(
        name="parent", plugin=PLUGIN, status="ok", onnx_path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size))
    registry.record_gate_results(version, [
        GateResult(gate=g, passed=g != failing, value=0.9, threshold=0.8, summary=f"{g} measured", details={})
        for g in GATES], EVIDENCE)
    return version


def builtins(*extra: object) -> Plugins:
    manager = build_plugin_manager(load_entrypoints=False)
    for number, plugin in enumerate(extra):
        manager.register(plugin, name=f"test-plugin-{number}")
    return Plugins(manager)


def gatewise(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real `gatewise` command in a subprocess, with ``home`` as its home and no registry URL from outside."""
    env = {**os.environ, "GATEWISE_HOME": str(home)}
    env.pop("GATEWISE_REGISTRY_URL", None)
    return subprocess.run([sys.executable, "-m", "gatewise.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


def promoted_registry(tmp_path: Path) -> tuple[Path, Registry, str]:
    """A real registry (SQLite) whose model `arrests` has one gated, promoted version."""
    home = tmp_path / "home"
    registry = Registry.open(home)
    version = register(registry, tmp_path / "in", "run-1", 0.8)
    registry.promote(version)
    return home, registry, version
