"""Exceptions of the bench scenarios (one tree, below :class:`cloud.errors.CloudError`)."""

from __future__ import annotations

from cloud.errors import CloudError


class ScenarioError(CloudError):
    """A scenario could not be set up or run (the message names the step)."""


class MissingBinary(ScenarioError):
    """A program the scenario needs (mosquitto, victoria-metrics) is not installed."""
