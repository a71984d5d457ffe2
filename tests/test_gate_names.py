"""The five gate names are one list in core: the policy, the gates and the registry agree with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import gatewise.registry
import pytest
from gatewise.config import Settings, parse_settings
from gatewise.errors import UsageError
from gatewise.gate_names import MANDATORY_GATES
from gatewise.gates import MANDATORY_GATES as GATES_BY_NAME
from gatewise.policy import GatePolicy
from gatewise.registry import statements

DOCS = Path(__file__).resolve().parent.parent / "docs" / "gates.md"


def test_the_list_is_five_names_in_the_order_gates_run():
    assert MANDATORY_GATES == ("accuracy_regression", "fairness", "robustness", "drift", "leakage")


def test_policy_sections_gates_and_registry_name_the_same_five_gates():
    assert tuple(GatePolicy.model_fields) == MANDATORY_GATES  # one [gates.NAME] section per gate
    assert tuple(Settings().gates.model_dump()) == MANDATORY_GATES
    assert tuple(GATES_BY_NAME) == MANDATORY_GATES  # the runner's gates, in the same order
    assert statements.MANDATORY_GATES is MANDATORY_GATES  # what verify and promotions require
    assert gatewise.registry.MANDATORY_GATES is MANDATORY_GATES


def test_each_gate_is_the_function_of_its_name_in_the_module_of_its_name():
    for name, gate in GATES_BY_NAME.items():
        assert gate.__module__ == f"gatewise.gates.{name}" and gate.__name__ == name


def test_a_policy_section_for_no_gate_is_an_error_naming_it():
    with pytest.raises(UsageError, match=r"unknown key 'gates\.latency'"):
        parse_settings({"gates": {"latency": {"max_ms": 5}}})


def test_the_gate_reference_documents_each_gate():
    headings = re.findall(r"^## (\w+)$", DOCS.read_text(), re.MULTILINE)
    assert [h for h in headings if h in MANDATORY_GATES] == list(MANDATORY_GATES)


def test_the_registry_reads_the_list_without_loading_gates_or_pydantic():
    code = ("import sys; from gatewise.registry.statements import MANDATORY_GATES; "
            "print(len(MANDATORY_GATES), 'gatewise.gates' in sys.modules, 'pydantic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["5", "False", "False"]
