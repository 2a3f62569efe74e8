"""Alarms: lifecycle with debounce and hysteresis, notifications, operator API (issue #6).

The rule engine emits :class:`~cloud.actions.AlarmSignal` actions; the alarm sink hands them to
:meth:`AlarmManager.handle`. Alarms live in SQL (``alarm*`` tables, :mod:`.tables`): one live
alarm per dedupe key, enforced by the database, and nothing depends on one worker's memory.
See ``docs/alarms.md``.

Modules: :mod:`.states` (levels, states, events), :mod:`.tables`, :mod:`.lifecycle` (the pure
state machine), :mod:`.manager`, :mod:`.view` (values handed out), :mod:`.notify` (notifier),
:mod:`.channels` (webhook, e-mail, template messages), :mod:`.messaging` (SMS/WeChat gateway
interface), :mod:`.config`, :mod:`.metrics`, :mod:`.api` (FastAPI router), :mod:`.service`
(:func:`build_alarms`: the whole part of a cloud worker, from config).

Exceptions (:mod:`.errors`)::

    cloud.errors.CloudError
    └── AlarmError                base of this package's errors
        ├── AlarmNotFound         no such alarm, or not visible to the caller (HTTP 404)
        ├── AlarmConflict         the operation does not fit the alarm's state (HTTP 409)
        ├── InvalidSignal         a signal that cannot be processed (stored, never raised by handle)
        └── ChannelError          a notification channel failed (``retryable``)

Database failures surface as :class:`cloud.errors.StoreError`.
"""

from cloud.alarms.config import AlarmsConfig
from cloud.alarms.errors import (
    AlarmConflict,
    AlarmError,
    AlarmNotFound,
    ChannelError,
    InvalidSignal,
)
from cloud.alarms.manager import AlarmManager
from cloud.alarms.metrics import AlarmMetrics
from cloud.alarms.notify import Notifier, build_notifier
from cloud.alarms.service import AlarmService, build_alarms
from cloud.alarms.states import Event, Level, State
from cloud.alarms.view import AlarmFilter, AlarmPage, AlarmView, HistoryEntry, Transition

__all__ = [
    "AlarmConflict", "AlarmError", "AlarmFilter", "AlarmManager", "AlarmMetrics",
    "AlarmNotFound", "AlarmPage", "AlarmService", "AlarmView", "AlarmsConfig", "ChannelError",
    "Event", "HistoryEntry", "InvalidSignal", "Level", "Notifier", "State", "Transition",
    "build_alarms", "build_notifier",
]
