"""Small tables of a run: a per-worker summary and the latest events.

A ``Table`` shows itself as HTML in a notebook and as aligned plain text in a
terminal or a test's failure message; ``.rows`` holds the raw values to assert on.
Reads only ``workqueue_lab.events``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from numbers import Number

from ..record import events as ev

__all__ = ["Table", "facts_table", "summary_table", "event_table"]


def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


class Table:
    """Rows (dicts) shown as a table.

    ``columns`` are row keys in display order (default: the keys of the rows, in
    first-seen order); ``headers`` renames them for display; ``formats`` maps a
    column to a format string such as ``"{:.3f}"``.  With ``total=True`` the last
    row is set apart as a total.
    """

    def __init__(self, rows: Iterable[Mapping], columns: Sequence[str] | None = None, caption: str = "",
                 headers: Mapping[str, str] | None = None, formats: Mapping[str, str] | None = None,
                 total: bool = False) -> None:
        self.rows: list[dict] = [dict(r) for r in rows]
        if columns is None:
            columns = list(dict.fromkeys(k for r in self.rows for k in r))
        self.columns = list(columns)
        self.caption = caption
        self.headers = dict(headers or {})
        self.formats = dict(formats or {})
        self.total = total and bool(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list:
        """One column's raw values, e.g. ``table.column("done")``."""
        return [r.get(name) for r in self.rows]

    def _cell(self, column: str, value) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else ""
        if column in self.formats:
            return self.formats[column].format(value)
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    def _numeric(self, column: str) -> bool:
        values = [r.get(column) for r in self.rows if r.get(column) is not None]
        return bool(values) and all(_is_number(v) for v in values)

    def __str__(self) -> str:
        headers = [self.headers.get(c, c) for c in self.columns]
        body = [[self._cell(c, r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(headers)]
        numeric = [self._numeric(c) for c in self.columns]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(cell.rjust(w) if num else cell.ljust(w)
                             for cell, w, num in zip(cells, widths, numeric, strict=True)).rstrip()

        out = [self.caption] if self.caption else []
        if not self.columns:
            return "\n".join(out + ["(no rows)"])
        out += [line(headers), "  ".join("-" * w for w in widths)]
        for i, row in enumerate(body):
            if self.total and i == len(body) - 1:
                out.append("  ".join("-" * w for w in widths))
            out.append(line(row))
        if not body:
            out.append("(no rows)")
        return "\n".join(out)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        numeric = {c: self._numeric(c) for c in self.columns}

        def style(column: str) -> str:
            # explicit padding: outside a notebook's own table CSS (e.g. in a widget) cells would touch
            align = "right" if numeric[column] else "left"
            return f' style="text-align:{align};padding:.2em .6em"'

        parts = ['<table class="workqueue-lab-table" style="border-collapse:collapse">']
        if self.caption:
            parts.append('<caption style="caption-side:top;text-align:left;padding-bottom:.3em">'
                         f"{html.escape(self.caption)}</caption>")
        parts.append("<thead><tr>")
        parts += [f"<th{style(c)}>{html.escape(self.headers.get(c, c))}</th>" for c in self.columns]
        parts.append("</tr></thead><tbody>")
        for i, row in enumerate(self.rows):
            is_total = self.total and i == len(self.rows) - 1
            tr = '<tr style="font-weight:bold;border-top:1px solid currentColor">' if is_total else "<tr>"
            cells = [f"<td{style(c)}>{html.escape(self._cell(c, row.get(c)))}</td>" for c in self.columns]
            parts.append(tr + "".join(cells) + "</tr>")
        if not self.rows:
            parts.append(f'<tr><td colspan="{max(len(self.columns), 1)}"><i>no rows</i></td></tr>')
        parts.append("</tbody></table>")
        return "".join(parts)


def facts_table(facts: Mapping[str, object], caption: str = "") -> Table:
    """Two columns, what and value: one row per fact (e.g. the versions and URLs notebook 00 shows)."""
    return Table(({"what": k, "value": "" if v is None else str(v)} for k, v in facts.items()),
                 columns=("what", "value"), caption=caption, headers={"what": "", "value": ""})


SUMMARY_COLUMNS = ("worker", "done", "attempts", "busy_s", "idle_s", "redelivered", "nacked", "crashes")
SUMMARY_HEADERS = {"busy_s": "busy s", "idle_s": "idle s"}


def summary_table(events: Iterable[ev.Event]) -> Table:
    """One row per worker from ``events.summary()``, a total row, and a caption with the run's outcome.

    Row keys are the summary's own (``done``, ``busy_s``, ...); the total row has ``worker="total"``.
    """
    evs = list(events)
    per_worker = ev.summary(evs)
    rows = [{"worker": w, **{k: stats[k] for k in SUMMARY_COLUMNS[1:]}} for w, stats in per_worker.items()]
    total: dict = {"worker": "total"}
    for key in SUMMARY_COLUMNS[1:]:
        value = sum(r[key] for r in rows)
        total[key] = round(value, 3) if isinstance(value, float) else value
    rows.append(total)

    published = set(ev.published(evs))
    completed = ev.completed(evs)
    lost = {e.task for e in evs if e.kind == ev.LOST}
    parts = [f"makespan {ev.makespan(evs):.2f} s", f"{len(published)} published",
             f"{len(published & set(completed)) if published else len(completed)} completed",
             f"{len(lost)} lost"]
    duplicates = sum(1 for n in completed.values() if n > 1)
    if duplicates:
        parts.append(f"{duplicates} completed more than once")
    for kind, what in ((ev.RETRY_WAIT, "sent to the retry queue"), (ev.DEAD_LETTER, "dead-lettered"),
                       (ev.PARKED, "parked")):
        tasks = {e.task for e in evs if e.kind == kind}
        if tasks:
            parts.append(f"{len(tasks)} {what}")
    return Table(rows, SUMMARY_COLUMNS, caption=" · ".join(parts), headers=SUMMARY_HEADERS,
                 formats={"busy_s": "{:.2f}", "idle_s": "{:.2f}"}, total=True)


EVENT_COLUMNS = ("t", "kind", "worker", "task", "redelivered", "detail")


def event_table(events: Iterable[ev.Event], last: int = 20) -> Table:
    """The ``last`` most recent events, oldest first.

    Columns: t (seconds, 3 decimals), kind, worker, task, redelivered, detail;
    ``detail`` also says ``requeue=True/False`` for a nack or reject.
    """
    evs = sorted(events, key=lambda e: e.t)  # stable: equal times keep their recorded order
    shown = evs[-last:] if last > 0 else []
    rows = []
    for e in shown:
        detail = e.detail
        if e.requeue is not None:
            detail = f"requeue={e.requeue}" + (f" {detail}" if detail else "")
        rows.append({"t": round(e.t, 3), "kind": e.kind, "worker": e.worker, "task": e.task,
                     "redelivered": e.redelivered, "detail": detail})
    caption = f"last {len(shown)} of {len(evs)} events" if len(shown) < len(evs) else f"{len(evs)} events"
    return Table(rows, EVENT_COLUMNS, caption=caption, formats={"t": "{:.3f}"})
