"""``python -m binary_nn.runs [DIR]``: past runs as a table.

The entry point only; the work is in ``binary_nn.experiments.run_list``.
"""

import sys

from .experiments.run_list import main

if __name__ == "__main__":
    sys.exit(main())
