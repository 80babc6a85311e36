"""``python -m nnkd``: the ``nnkd`` command (its usage and advice name ``python -m nnkd``)."""

import sys

from .cli import main

sys.argv[0] = "python -m nnkd"

sys.exit(main())
