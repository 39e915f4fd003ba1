"""Widgets on a static page: a panel's picture and readings instead of controls that need a kernel.

A site has no kernel, so an ipywidgets panel would show as "Loading widget..." (or, with a CDN, as
controls that do nothing).  The executed notebook keeps the widgets' state; this turns each widget
output into what the panel showed after its run: its settings as a line, its HTML readings, its images.
"""

from __future__ import annotations

import html
import re

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MODEL_REF = re.compile(r"IPY_MODEL_([0-9a-f]+)")
SETTING_MODELS = ("IntSlider", "FloatSlider", "ToggleButton", "Dropdown", "Checkbox", "IntText", "FloatText")


def _walk(state: dict, model_id: str, seen: set[str]) -> list[dict]:
    """Models under ``model_id`` (itself first), following child references, layouts and styles skipped."""
    model = state.get(model_id)
    if model is None or model_id in seen:
        return []
    seen.add(model_id)
    found = [model]
    for key, value in model["state"].items():
        if key in ("layout", "style"):
            continue
        for ref in MODEL_REF.findall(str(value)):
            found += _walk(state, ref, seen)
    return found


def _setting(model: dict) -> str | None:
    st = model["state"]
    if not model["model_name"].startswith(SETTING_MODELS) or not st.get("description"):
        return None
    value = st.get("value")
    if "_options_labels" in st and isinstance(st.get("index"), int):
        value = st["_options_labels"][st["index"]]
    return f"{st['description']} = {value}"


def snapshot(view: dict, state: dict) -> list[dict]:
    """The outputs that stand in for one widget view: a note, its settings and readings, its images."""
    models = _walk(state, view["model_id"], set())
    settings = [s for s in (_setting(m) for m in models) if s]
    readings = [m["state"]["value"] for m in models if m["model_name"] == "HTMLModel" and m["state"].get("value")]
    note = ("<p><em>In JupyterLab this is an interactive panel; launch this page on Binder to use it. "
            "Here is what it showed after the run above.</em></p>")
    if settings:
        note += f"<p>settings: {html.escape(', '.join(settings))}</p>"
    outputs = [{"output_type": "display_data", "metadata": {},
                "data": {"text/html": note + "".join(f"<div>{r}</div>" for r in readings),
                         "text/plain": "(an interactive panel)"}}]
    for m in models:
        if m["model_name"] == "ImageModel":
            for buffer in m.get("buffers", []):
                if buffer.get("path") == ["value"] and buffer.get("encoding") == "base64":
                    fmt = m["state"].get("format", "png")
                    outputs.append({"output_type": "display_data", "metadata": {},
                                    "data": {f"image/{fmt}": buffer["data"], "text/plain": "(panel picture)"}})
    return [nbformat.from_dict(o) for o in outputs]


def freeze(nb) -> int:
    """Replace every widget output of an executed notebook by its snapshot; returns how many were replaced."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                new.append(out)
                continue
            replaced += 1
            new += snapshot(view, state)
        cell.outputs = new
    nb.metadata.pop("widgets", None)  # no widget state left: the page loads no widget scripts
    return replaced
