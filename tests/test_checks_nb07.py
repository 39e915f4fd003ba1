"""Notebook 07's capstone check, on hand-made evidence (no broker): the right answer and the typical mistakes."""

from __future__ import annotations

from workqueue_lab.lessons.checks import nb07

EXPECTED = {"a.csv": 3, "b.csv": 2}
BROKEN = {"bad.csv"}
DEAD = {"bad.csv": "ValueError: line 3: could not convert string to float: 'twelve'"}


def test_capstone_right_answer_passes():
    check = nb07.check_import(EXPECTED, BROKEN, rows={"a.csv": 3, "b.csv": 2}, commits={"a.csv": 2, "b.csv": 1},
                              dead=DEAD, killed=True)
    assert check and check.hint == ""


def test_capstone_plain_insert_sends_the_redelivered_file_to_the_dlq():
    check = nb07.check_import(EXPECTED, BROKEN, rows={"a.csv": 3, "b.csv": 2}, commits={"a.csv": 1, "b.csv": 1},
                              dead={**DEAD, "a.csv": "IntegrityError: UNIQUE constraint failed: sales.file"},
                              killed=True)
    assert not check and "INSERT OR REPLACE" in check.hint and "a.csv" in check.hint


def test_capstone_writing_before_validating_leaves_rows_of_a_broken_file():
    check = nb07.check_import(EXPECTED, BROKEN, rows={"a.csv": 3, "b.csv": 2, "bad.csv": 2},
                              commits={"a.csv": 2, "b.csv": 1}, dead=DEAD, killed=True)
    assert not check and "one transaction" in check.hint and "bad.csv" in check.hint


def test_capstone_accepting_a_broken_file_and_the_unwritten_stub():
    accepted = nb07.check_import(EXPECTED, BROKEN, rows={"a.csv": 3, "b.csv": 2}, commits={"a.csv": 2, "b.csv": 1},
                                 dead={}, killed=True)
    assert not accepted and "raise ValueError" in accepted.hint
    stub = nb07.check_import(EXPECTED, BROKEN, rows={}, commits={}, killed=False,
                             dead={f: "NotImplementedError: write import_csv" for f in ("a.csv", "b.csv", "bad.csv")})
    assert not stub and "NotImplementedError" in stub.hint


def test_capstone_without_a_duplicate_delivery_proves_nothing():
    check = nb07.check_import(EXPECTED, BROKEN, rows={"a.csv": 3, "b.csv": 2}, commits={"a.csv": 1, "b.csv": 1},
                              dead=DEAD, killed=False)
    assert not check and "imported twice" in check.hint
