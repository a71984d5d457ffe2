"""The compressor's contract tests, shipped inside the package: ``pytest --pyargs gatewise_prune``
runs them against the installed plugin with gatewise's pytest kit (docs/plugin-testing.md)."""

from __future__ import annotations

from gatewise.testing import CompressorContract

from gatewise_prune import MagnitudePruning


class TestMagnitudePruning(CompressorContract):
    compressor = MagnitudePruning()
    params = {"sparsity": 0.2}
    timeout_s = 60.0
