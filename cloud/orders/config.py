"""Typed configuration of the orders service (``orders:`` in the cloud config)."""

from __future__ import annotations

from pydantic import Field

from cloud.strict import Strict


class OrdersConfig(Strict):
    """Time-outs and the watch/poll cadence (seconds). Meter limits and reconciliation
    tolerances are the billing module's (``billing:``, :class:`cloud.billing.BillingConfig`)."""

    #: an ended session is billed this long after its end was first received, so that meter
    #: samples still in flight (another worker, a replayed backlog) are part of its
    #: settlement; 0 bills at once. Settlement is then done by ``run()``'s settle loop.
    settle_grace: float = Field(default=5.0, ge=0)
    #: how often ``run()`` settles the sessions whose grace has passed
    settle_interval: float = Field(default=1.0, gt=0)
    #: an open session with no news for this long becomes ``timeout``
    stale_after: float = Field(default=48 * 3600.0, gt=0)
    #: an ended session that still cannot be billed after this long becomes ``timeout``
    settle_timeout: float = Field(default=24 * 3600.0, gt=0)
    #: billed orders whose debit has not been recorded after this long are retried (crash recovery)
    payment_retry_after: float = Field(default=30.0, gt=0)
    #: how often ``run()`` sweeps for stale sessions and stuck payments
    sweep_interval: float = Field(default=60.0, gt=0)
    #: ``watch()`` re-reads the order this often (changes made by other workers)
    watch_poll_interval: float = Field(default=2.0, gt=0)
    #: the catalogue's answer for a connector is cached this long
    place_cache_ttl: float = Field(default=30.0, ge=0)
