"""``python -m streamhsm``: the command line (see :mod:`streamhsm.tools.cli`)."""

import sys

from .tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
