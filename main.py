"""nnkd's command line; see `python main.py --help`."""

import sys

from nnkd.cli import main

if __name__ == "__main__":
    sys.exit(main())
