"""The exception tree of :mod:`thingmodels`.

::

    ThingModelError                 base of everything raised here
    ├── ModelFileError              a thing-model or data file is invalid (names file, path, line)
    ├── UnknownModelError           no model for a product / no such property, event or service
    ├── PayloadError                params do not fit the model (names the path inside params)
    ├── TopicError                  a topic or an id cannot be built or parsed
    └── EnvelopeError               bytes are not a valid envelope
"""

from __future__ import annotations


class ThingModelError(Exception):
    """Base class of every error raised by :mod:`thingmodels`."""


class ModelFileError(ThingModelError):
    """A YAML data file failed validation.

    Carries the file, the path inside the document and, when known, the line.
    """

    def __init__(self, file: str, path: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.path = path
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {path or '<root>'}: {message}")


class UnknownModelError(ThingModelError):
    """A product, property, event or service is not declared."""


class PayloadError(ThingModelError):
    """A payload does not fit its thing-model declaration."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class TopicError(ThingModelError):
    """A topic or a topic level is invalid."""


class EnvelopeError(ThingModelError):
    """Bytes that are not a valid voltmesh envelope."""
