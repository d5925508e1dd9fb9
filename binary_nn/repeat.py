"""``python -m binary_nn.repeat SETTINGS``: run a list of settings over several seeds.

The entry point only; the work is in ``binary_nn.experiments.campaign``.
"""

import sys

from .experiments.campaign import main

if __name__ == "__main__":
    sys.exit(main())
