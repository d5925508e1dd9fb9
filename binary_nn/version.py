"""The release of binary_nn (one place; the package and run records read it)."""

__version__ = "0.2.0"
