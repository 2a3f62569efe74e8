"""The chaos drill's exceptions."""

from __future__ import annotations


class ChaosError(Exception):
    """The drill could not run (a process did not start, bad parameters); the message says why.

    A drill that runs and finds a loss is not an error: it returns a failing verdict."""
