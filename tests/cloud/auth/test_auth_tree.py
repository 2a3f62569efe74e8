"""The in-memory tenant tree: subtrees, visibility, blocking ancestors."""

from __future__ import annotations

from cloud.auth.models import TenantKind, TenantStatus
from cloud.auth.tree import TenantNode, TenantTree

K, S = TenantKind, TenantStatus


def node(id_: str, kind: TenantKind, parent: str | None,
         status: TenantStatus = S.ACTIVE) -> TenantNode:
    return TenantNode(id=id_, name=id_, kind=kind, parent_id=parent, status=status)


TREE = [node("p", K.PLATFORM, None), node("a", K.OPERATOR, "p"), node("b", K.OPERATOR, "p"),
        node("a1", K.AGENT, "a"), node("a11", K.AGENT, "a1"),
        node("a11o", K.STATION_OWNER, "a11", S.SUSPENDED), node("bo", K.STATION_OWNER, "b")]


def test_subtrees_and_visibility() -> None:
    tree = TenantTree(TREE)
    assert tree.subtree("a") == {"a", "a1", "a11", "a11o"}
    assert tree.subtree("a") is tree.subtree("a")  # memoized
    assert tree.subtree("b") == {"b", "bo"}
    assert tree.subtree("bo") == {"bo"}
    assert tree.visible_from("p") is None
    assert tree.visible_from("a1") == {"a1", "a11", "a11o"}
    assert tree.visible_from("unknown") == {"unknown"}
    assert tree.ancestors("a11o") == ["a11", "a1", "a", "p"]
    assert tree.is_below("a11", "a") and not tree.is_below("a", "a11")
    assert not tree.is_below("a", "a") and not tree.is_below("bo", "a")
    assert sorted(tree.children("a1")) == ["a11"]


def test_active_checks_every_ancestor() -> None:
    tree = TenantTree(TREE)
    assert tree.active("a11") is None
    assert tree.active("a11o") is S.SUSPENDED
    assert tree.active("nope") is S.DELETED
    blocked = TenantTree([*TREE[:1], node("a", K.OPERATOR, "p", S.DELETED), *TREE[2:]])
    assert blocked.active("a11") is S.DELETED and blocked.active("bo") is None


def test_large_tree_and_cycles_are_cut() -> None:
    nodes = [node("p", K.PLATFORM, None), node("op", K.OPERATOR, "p")]
    nodes += [node(f"ag{i}", K.AGENT, "op" if i == 0 else f"ag{i - 1}") for i in range(2000)]
    tree = TenantTree(nodes)
    assert len(tree.subtree("op")) == 2001  # deep chains: iterative, no recursion limit
    looped = TenantTree([node("x", K.AGENT, "y"), node("y", K.AGENT, "x")])
    assert looped.ancestors("x") == ["y", "x"] and looped.subtree("x") == {"x", "y"}
