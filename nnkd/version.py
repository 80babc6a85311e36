"""The version of nnkd (one place: setup.cfg reads it too)."""

__version__ = "0.1.0"
