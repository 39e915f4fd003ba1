"""nbval runs the course notebooks from here: a cell that printed ``NOT CHECKED: …`` fails the run.

A demo that could not run on this broker says so with ``lessons.notes.not_checked(why)``; without
this hook its cell would pass and CI would report a claim as checked that was not.
"""

from __future__ import annotations

import pytest

from workqueue_lab.lessons.notes import not_checked_lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    lines = not_checked_lines(getattr(item, "test_outputs", None) or [])
    if lines:
        report.outcome = "failed"
        report.longrepr = ("This cell ran, but a claim in it was not checked on this broker:\n  "
                           + "\n  ".join(lines))
