"""Regenerate docs/errors.md from the messages the lab really produces.

    python tests/errors_doc.py

Runs ``tests/test_bad_input.py`` in record mode (each case writes its message to a temporary directory
instead of comparing it with docs/errors.md), then writes the file.  ``test_docs_errors_md_is_current``
and each case's own check keep it current; they never write it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import test_bad_input as cases  # noqa: E402  (after the path: tests/ is not a package)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wqlab-errors-doc-") as out:
        env = dict(os.environ, **{cases.RECORD_DIR: out})
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:logging", "-p", "no:randomly",
                               str(HERE / "test_bad_input.py"), "-k", "not test_docs_errors_md_is_current"],
                              env=env, cwd=HERE.parent)
        if proc.returncode != 0:
            print("some cases failed; docs/errors.md is left as it was", file=sys.stderr)
            return proc.returncode
        messages = {p.stem: json.loads(p.read_text()) for p in Path(out).glob("*.json")}
    missing = (set(cases.CASES) | set(cases.POISON_ROWS)) - set(messages)
    if missing:
        print(f"no message recorded for {sorted(missing)}; docs/errors.md is left as it was", file=sys.stderr)
        return 1
    cases.DOC.write_text(cases.render_doc(messages))
    print(f"wrote {cases.DOC.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
