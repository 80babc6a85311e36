"""``python -m nnkd``: the ``nnkd`` command."""

import sys

from .cli import main

sys.exit(main())
