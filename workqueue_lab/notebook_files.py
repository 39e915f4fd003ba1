"""Course notebooks stay output-free on disk, whatever a learner runs (the README's rule).

Two guards, both built on nbstripout's ``strip_output`` with one list of keys:
- ``pre_save_hook``: JupyterLab saves (autosave included) of ``notebooks/NN_*.ipynb`` write them without
  outputs, so ``git status`` stays clean (jupyter/start-lab and binder/jupyter_server_config.py set it);
- ``python -m workqueue_lab.notebook_files``: the git clean filter (`make lab`/`make test` set it up), so a
  notebook saved some other way (``nbconvert --inplace``) never brings its outputs into a commit.
"""

from __future__ import annotations

import re
import sys

# nbstripout's own default keys, plus what a kernel adds to language_info on every run.
STRIP_KEYS = (
    "metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
    "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden", "cell.metadata.scrolled",
    "metadata.language_info.codemirror_mode", "metadata.language_info.file_extension",
    "metadata.language_info.mimetype", "metadata.language_info.nbconvert_exporter",
    "metadata.language_info.pygments_lexer", "metadata.language_info.version",
)
COURSE_NOTEBOOK = re.compile(r"notebooks/\d\d_[^/]+\.ipynb")


def strip(nb):
    """The notebook without outputs, execution counts or run metadata (cell ids kept), as committed."""
    from nbstripout import strip_output

    return strip_output(nb, keep_output=False, keep_count=False, keep_id=True, extra_keys=list(STRIP_KEYS))


def pre_save_hook(model: dict, path: str, **kwargs) -> None:
    """Jupyter Server ``ContentsManager.pre_save_hook``: a course notebook is saved output-free."""
    if model.get("type") == "notebook" and COURSE_NOTEBOOK.fullmatch(path.lstrip("/")):
        import nbformat

        model["content"] = strip(nbformat.from_dict(model["content"]))  # the server hands over a plain dict


def main(argv: list[str] | None = None) -> int:
    """Git clean filter (a notebook on stdin) and textconv (its path as the argument): the notebook stripped,
    on stdout."""
    import nbformat

    args = sys.argv[1:] if argv is None else argv
    source = open(args[0], encoding="utf-8") if args else sys.stdin  # noqa: SIM115 -- closed below
    try:
        nb = nbformat.read(source, as_version=nbformat.NO_CONVERT)
    finally:
        if args:
            source.close()
    nbformat.write(strip(nb), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
