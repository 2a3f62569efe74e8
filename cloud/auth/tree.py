"""The tenant hierarchy in memory: parents, children, descendants (memoized per snapshot).

A :class:`TenantTree` is immutable once built; :class:`cloud.auth.service.AuthService` builds a
new one when the ``auth_revision`` counter in the database moved (a change by this or another
worker) and keeps using the old one otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from cloud.auth.models import TenantKind, TenantStatus


@dataclass(frozen=True, slots=True)
class TenantNode:
    """What authentication needs to know of a tenant."""

    id: str
    name: str
    kind: TenantKind
    parent_id: str | None
    status: TenantStatus


class TenantTree:
    """Parent/child relations of all tenants (including deleted ones: their rows still own data)."""

    def __init__(self, nodes: Iterable[TenantNode]) -> None:
        self.nodes: dict[str, TenantNode] = {n.id: n for n in nodes}
        self._children: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.parent_id is not None:
                self._children.setdefault(node.parent_id, []).append(node.id)
        self._below: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str) -> TenantNode | None:
        """A tenant by id."""
        return self.nodes.get(tenant_id)

    def children(self, tenant_id: str) -> list[str]:
        """The direct children of a tenant."""
        return list(self._children.get(tenant_id, ()))

    def ancestors(self, tenant_id: str) -> list[str]:
        """Parent, grand-parent ... up to the root (cycles cannot be stored, but are cut)."""
        out: list[str] = []
        node = self.nodes.get(tenant_id)
        while node is not None and node.parent_id is not None and node.parent_id not in out:
            out.append(node.parent_id)
            node = self.nodes.get(node.parent_id)
        return out

    def subtree(self, tenant_id: str) -> frozenset[str]:
        """The tenant and every tenant below it (memoized; O(size of the subtree) once)."""
        with self._lock:
            cached = self._below.get(tenant_id)
        if cached is not None:
            return cached
        seen = {tenant_id}
        stack = [tenant_id]
        while stack:
            for child in self._children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        result = frozenset(seen)
        with self._lock:
            self._below[tenant_id] = result
        return result

    def visible_from(self, tenant_id: str) -> frozenset[str] | None:
        """What a principal of ``tenant_id`` sees: None (everything) for a platform tenant."""
        node = self.nodes.get(tenant_id)
        if node is not None and node.kind is TenantKind.PLATFORM:
            return None
        return self.subtree(tenant_id)

    def is_below(self, tenant_id: str, ancestor_id: str) -> bool:
        """Whether ``tenant_id`` is strictly below ``ancestor_id``."""
        return ancestor_id in self.ancestors(tenant_id)

    def active(self, tenant_id: str) -> TenantStatus | None:
        """None when the tenant and all its ancestors are active, else the blocking status."""
        for tid in [tenant_id, *self.ancestors(tenant_id)]:
            node = self.nodes.get(tid)
            if node is None:
                return TenantStatus.DELETED
            if node.status is not TenantStatus.ACTIVE:
                return node.status
        return None
