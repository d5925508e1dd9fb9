"""``python -m binary_nn.runs [DIR]``: past runs as a table.

The entry point only; the work is in :mod:`binary_nn.experiments.runs`.
"""

import sys

from .experiments.runs import main

if __name__ == "__main__":
    sys.exit(main())
