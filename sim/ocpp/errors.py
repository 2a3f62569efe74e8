"""Exceptions of the OCPP simulator::

    SimError
    ├── NotConnected      the action needs a booted connection and there is none
    └── Refused           the CSMS said no (authorization, start) or answered with a CALLERROR
"""

from __future__ import annotations


class SimError(Exception):
    """Base of the simulator's errors."""


class NotConnected(SimError):
    """No booted connection to the CSMS right now."""


class Refused(SimError):
    """The CSMS refused (idTag not accepted, start rejected) or answered with a CALLERROR."""
