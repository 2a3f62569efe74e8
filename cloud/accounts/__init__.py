"""Customers, wallets with an append-only ledger, cards, vehicles and start authorisation.

Public API: :class:`~cloud.accounts.service.AccountService` (sync), the tables in
:mod:`cloud.accounts.models`, the operating-mode matrix and :class:`Decision` in
:mod:`cloud.accounts.authorize`, the HTTP ``router`` in :mod:`cloud.accounts.api`.
"""

from cloud.accounts.authorize import ChargerType, Decision, OperatingMode, Reason, StartMethod
from cloud.accounts.config import AccountsConfig
from cloud.accounts.idtags import IdType
from cloud.accounts.service import Account, AccountService

__all__ = ["Account", "AccountService", "AccountsConfig", "ChargerType", "Decision", "IdType",
           "OperatingMode", "Reason", "StartMethod"]
