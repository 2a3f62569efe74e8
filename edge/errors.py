"""The exception tree of :mod:`edge`.

::

    EdgeError                      base of everything raised by the gateway runtime
    ├── ConfigError                invalid gateway configuration (wraps ModelFileError)
    ├── OutboxError                the durable outbox failed (disk full, corrupt database)
    └── DeviceError                a device could not do what was asked; carries a reply code
        ├── UnknownDevice          no adapter owns the device (404)
        ├── DeviceOffline          the device is not connected (503)
        ├── DeviceRejected         the device answered no (409)
        ├── DeviceTimeout          the device did not answer in time (504)
        └── ServiceNotSupported    the adapter has no such service for this device (501)
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of the edge runtime's errors."""


class ConfigError(EdgeError):
    """The gateway configuration is invalid."""


class OutboxError(EdgeError):
    """The durable outbox could not store or read a message."""


class DeviceError(EdgeError):
    """A service call failed at the device; ``code`` is the reply code."""

    code = 500

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UnknownDevice(DeviceError):
    """No adapter owns the device."""

    code = 404


class DeviceOffline(DeviceError):
    """The device is not connected to the gateway."""

    code = 503


class DeviceRejected(DeviceError):
    """The device refused the request."""

    code = 409


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""

    code = 504


class ServiceNotSupported(DeviceError):
    """The adapter does not implement the service for this device."""

    code = 501


# Reply codes used on svc replies besides those of DeviceError subclasses.
CODE_OK = 0
CODE_BAD_INPUT = 400
CODE_EXPIRED = 408
CODE_INTERNAL = 500
