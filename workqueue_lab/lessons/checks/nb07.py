"""Self-check for notebook 07, the capstone: CSV files imported into SQLite by task_worker.py processes.

The evidence is what the job left behind, gathered by the notebook: rows per file in the database,
how many times each file's import committed, and the dead-letter queue (file -> the worker's reason).
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import Check, verdict

__all__ = ["check_import"]


def check_import(expected: Mapping[str, int], broken: set[str], rows: Mapping[str, int],
                 commits: Mapping[str, int], dead: Mapping[str, str], killed: bool) -> Check:
    """Every good file's rows are in the table exactly once, every broken file is on the DLQ with a
    reason and wrote nothing, and this held although a worker was killed after a commit (so at least
    one file was imported twice: a duplicate delivery, absorbed by the idempotent write).

    ``expected``: good file -> its row count; ``broken``: the broken files; ``rows``: file -> rows in
    the table; ``commits``: file -> imports that committed; ``dead``: file on the DLQ -> reason.
    """
    name = "Every good file imported exactly once in effect; broken ones on the dead-letter queue"
    twice = sorted(f for f, n in commits.items() if n > 1)
    good_ok = sorted(f for f, n in expected.items() if rows.get(f, 0) == n and f not in dead)
    expected_text = (f"{len(expected)} good files with their rows once, {len(broken)} broken files on the DLQ "
                     "with a reason and no rows, a worker killed after a commit")
    got = (f"{len(good_ok)} of {len(expected)} good files complete; on the DLQ: {sorted(dead) or 'none'}; "
           f"imported more than once: {twice or 'none'}; worker killed: {'yes' if killed else 'no'}")
    return verdict(name, expected_text, got, _hint(expected, broken, rows, dead, twice, killed))


def _hint(expected, broken, rows, dead, twice, killed) -> str:
    if dead and all("NotImplementedError" in reason for reason in dead.values()):
        return "Your import_csv still raises NotImplementedError: write the parsing and the write."
    for f in sorted(expected):
        reason = dead.get(f)
        if reason and ("UNIQUE" in reason or "IntegrityError" in reason):
            return (f"{f} is good but its second delivery failed ({reason}): a plain INSERT hits the primary key "
                    "when a file is imported again. Write the rows with INSERT OR REPLACE (or ON CONFLICT ... DO "
                    "UPDATE), so a rerun leaves the same rows.")
        if reason:
            return f"{f} is a good file, but your function raised on it: {reason}."
    for f in sorted(broken):
        if rows.get(f, 0):
            return (f"{f} is broken, yet {rows[f]} of its rows were written: check every row before writing, "
                    "and write the file's rows in one transaction (with db:), so it is all or nothing.")
        if f not in dead:
            return (f"{f} is broken but was not rejected: raise ValueError for a row whose amount is not a number "
                    "or that lacks a column, so the worker nacks it to the dead-letter queue.")
    for f, n in sorted(expected.items()):
        if rows.get(f, 0) != n:
            return f"{f} has {rows.get(f, 0)} rows in the table, expected {n}: read every row of the file."
    if not killed or not twice:
        return ("No file was imported twice, so idempotency was not put to the test: let run_import kill a "
                "worker after its commit (keep the sleep after the transaction).")
    return ""
