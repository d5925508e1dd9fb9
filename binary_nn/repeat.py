"""``python -m binary_nn.repeat SETTINGS``: run a list of settings over several seeds.

The entry point only; the work is in :mod:`binary_nn.experiments.repeat`.
"""

import sys

from .experiments.repeat import main

if __name__ == "__main__":
    sys.exit(main())
