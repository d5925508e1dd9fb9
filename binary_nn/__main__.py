"""``python -m binary_nn`` is ``python -m binary_nn.train``."""

import sys

from .train import main

sys.exit(main())
