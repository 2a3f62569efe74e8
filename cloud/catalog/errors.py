"""The exception tree of :mod:`cloud.catalog`.

::

    CloudError
    └── CatalogError          base of everything raised by the catalogue
        ├── NotFound          no such station / charger / connector / tariff (or not visible)
        ├── Conflict          a unique id or code is taken, or a row is still in use
        └── InvalidInput      a value is refused (also a ValueError); the message says why
"""

from __future__ import annotations

from cloud.errors import CloudError


class CatalogError(CloudError):
    """Base class of the catalogue's errors."""


class NotFound(CatalogError, LookupError):
    """The row does not exist or the caller cannot see it."""


class Conflict(CatalogError):
    """A unique id or code is already taken, or the row is still referenced."""


class InvalidInput(CatalogError, ValueError):
    """A value is refused; the message names the field."""
