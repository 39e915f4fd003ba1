"""One way to make a figure, and the colours every picture of a run shares.

How a figure shows up in a notebook
-----------------------------------
Figures are built with ``matplotlib.figure.Figure`` and a ``FigureCanvasAgg``,
never with pyplot, so they are not registered in pyplot's global figure list:
the inline backend does not show them again at the end of the cell, and no
``plt.close`` is needed.  ``new_figure`` returns a ``LabFigure`` -- a plain
``Figure`` subclass that adds ``_repr_png_``.  Returned as the last expression
of a cell it shows exactly one image, whether or not the inline backend has been
activated (a bare ``Figure`` would show as ``<Figure size ...>`` text until
something imports pyplot; once it has, IPython's own PNG printer for figures is
used instead of ``_repr_png_`` -- still one image).  Save it with ``fig.savefig``.
Checked by executing notebooks with ipykernel 7.4 / matplotlib 3.11: one PNG per
cell with and without ``%matplotlib inline``.  Only if you pass a pyplot Axes
(``ax=``) to a drawing function does pyplot also show that figure at the end of
the cell, as it always does; end the line with ``;`` then.

matplotlib is imported lazily, inside the functions, so importing the lab stays cheap.
"""

from __future__ import annotations

import io

__all__ = ["new_figure", "tidy_axes", "palette", "task_color"]

# Task colours: Tableau 10 without its red and orange (kept for crash and nack marks), lightened so
# black labels stay readable.  A run with more tasks gets one hue per task instead (see palette).
TASK_COLORS = ("#4e79a7", "#edc948", "#59a14f", "#b07aa1", "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac")
UNKNOWN_TASK = "#dcdcdc"
NACK = "#f28e2b"
CRASH = "#d62728"
TIMEOUT = "#7b3294"
INK = "#333333"
GRID = "#e6e6e6"
WIDTH_IN = 9.5  # a full-width picture, inches

_figure_class = None


def new_figure(width: float, height: float):
    """A pyplot-free figure (``LabFigure``) with an Agg canvas, ``width`` x ``height`` inches."""
    global _figure_class
    if _figure_class is None:
        from matplotlib.figure import Figure

        class LabFigure(Figure):
            """A matplotlib Figure that shows itself once as a PNG when a notebook cell returns it."""

            def _repr_png_(self) -> bytes:
                buf = io.BytesIO()
                self.savefig(buf, format="png", dpi=100)
                return buf.getvalue()

        LabFigure.__module__ = __name__
        LabFigure.__qualname__ = "LabFigure"
        _figure_class = LabFigure
        globals()["LabFigure"] = LabFigure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _figure_class(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def __getattr__(name: str):  # LabFigure is created on first use, so importing stays cheap
    if name == "LabFigure":
        new_figure(1, 1)
        return _figure_class
    raise AttributeError(name)


def tidy_axes(ax, grid: str = "both") -> None:
    """The house style of a chart: no top or right frame, a light grid (``"x"``, ``"y"`` or ``"both"``) behind
    the data."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis=grid, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def palette(n_tasks: int = len(TASK_COLORS)):
    """(colours, unknown): row ``task - 1`` is task ``task``'s RGBA colour; no two of ``n_tasks`` rows alike.

    Up to 8 tasks: Tableau 10 without red and orange.  More: ``n_tasks`` hues evenly spaced from yellow
    round to pink (skipping the reds and oranges the crash and nack marks use), handed out in a stride
    order so consecutive task numbers get far-apart hues, with two alternating shades.
    """
    import math

    import numpy as np
    from matplotlib.colors import hsv_to_rgb, to_rgba_array

    if n_tasks <= len(TASK_COLORS):
        base = to_rgba_array(TASK_COLORS)
    else:
        stride = round(n_tasks * 0.382)  # ~ the golden ratio: neighbours land far apart on the hue circle
        while math.gcd(stride, n_tasks) != 1:
            stride += 1
        slot = (np.arange(n_tasks) * stride) % n_tasks
        hsv = np.empty((n_tasks, 3))
        hsv[:, 0] = (50 + 270 * slot / (n_tasks - 1)) / 360
        hsv[:, 1] = np.where(np.arange(n_tasks) % 2, 0.75, 0.55)
        hsv[:, 2] = np.where(np.arange(n_tasks) % 2, 0.62, 0.85)
        base = np.ones((n_tasks, 4))
        base[:, :3] = hsv_to_rgb(hsv)
    base[:, :3] = base[:, :3] * 0.7 + 0.3  # toward white
    return base, np.array(to_rgba_array(UNKNOWN_TASK)[0])


def task_color(task: int | None, n_tasks: int = len(TASK_COLORS)):
    """The RGBA colour ``task`` gets on every picture of a run with ``n_tasks`` tasks (each task its own)."""
    pal, unknown = palette(n_tasks)
    return tuple(unknown) if task is None else tuple(pal[(task - 1) % len(pal)])
