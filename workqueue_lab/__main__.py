"""`python -m workqueue_lab ...` is the `workqueue-lab` command."""

import sys

from .cli import main

sys.exit(main())
