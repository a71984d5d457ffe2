"""The end-of-run summary of `gatewise run`: a failed gate's line names only its failed checks."""

from __future__ import annotations


def test_the_run_summary_lists_only_the_failed_checks():
    from gatewise.cli import failing_summary

    summary = ("demographic parity 0.352 > 0.200 (colour); equalized odds 0.310 > 0.200 (colour); "
               "group drop vs parent -0.004 <= 0.050 (colour=White); balanced_accuracy 0.671 >= 0.600")
    assert failing_summary(summary) == "demographic parity 0.352 > 0.200 (colour); equalized odds 0.310 > 0.200 (colour)"
