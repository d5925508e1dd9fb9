"""``python -m binary_nn.sweep FILE.yaml``: run a Weights & Biases sweep file: a grid, a
random or Bayesian search, with or without early termination.

The entry point only; the work is in ``binary_nn.experiments.search``.
"""

import sys

from .experiments.search import main

if __name__ == "__main__":
    sys.exit(main())
