"""One visible line for a claim a notebook could not check here, and the test hook that finds it.

A demo that cannot run on the broker at hand (a setting the lab cannot change, a feature the
version lacks) must not let its asserts pass as if it had: the notebook calls
``not_checked(why)`` instead, which prints one line starting ``NOT CHECKED:``.  A reader sees
it, and CI fails on it (``notebooks/conftest.py`` looks for the line in every executed cell).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["MARK", "not_checked", "not_checked_lines"]

MARK = "NOT CHECKED:"


def not_checked(why: str) -> None:
    """Print ``NOT CHECKED: <why>``: the claim next to it was not put to the test on this broker."""
    print(f"{MARK} {why}")


def not_checked_lines(outputs: Iterable[Mapping]) -> list[str]:
    """The ``NOT CHECKED:`` lines in a cell's outputs (nbformat output dicts: streams, results, displays)."""
    found = []
    for out in outputs or ():
        texts = [out.get("text", "")]
        data = out.get("data") or {}
        texts.append(data.get("text/plain", ""))
        for text in texts:
            text = "".join(text) if isinstance(text, list) else str(text or "")
            found.extend(line.strip() for line in text.splitlines() if line.lstrip().startswith(MARK))
    return found
