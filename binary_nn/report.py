"""``python -m binary_nn.report RUNS... --out DIR``: the study's tables and figures.

The entry point only; the work is in ``binary_nn.experiments.report``.
"""

import sys

from .experiments.reporting import main

if __name__ == "__main__":
    sys.exit(main())
