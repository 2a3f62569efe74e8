"""The exception tree of :mod:`cloud`.

::

    CloudError                    base of everything raised by the cloud services
    ├── ConfigError               invalid cloud configuration
    ├── CommandError              a device command could not be delivered or answered
    │   └── CommandTimeout        no reply before the deadline
    └── StoreError                the relational store failed
"""

from __future__ import annotations


class CloudError(Exception):
    """Base class of the cloud's errors."""


class ConfigError(CloudError):
    """The cloud configuration is invalid."""


class CommandError(CloudError):
    """A service call to a device failed; ``code`` is the reply code when there was a reply."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class CommandTimeout(CommandError):
    """No reply arrived before the command's deadline."""


class StoreError(CloudError):
    """The relational store failed."""
