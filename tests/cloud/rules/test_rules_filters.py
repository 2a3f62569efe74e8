"""The filter trie: exact levels, '+', '#', order and dedupe; agrees with MQTT matching."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.rules.filters import FilterTrie, Source, check_filter
from thingmodels.loader import builtin_models
from thingmodels.topics import matches


def trie(*filters: str) -> FilterTrie[str]:
    index: FilterTrie[str] = FilterTrie()
    for f in filters:
        index.add(f, f)
    return index


def levels(topic: str) -> list[str]:
    return topic.split("/")


def test_exact_plus_and_hash() -> None:
    index = trie(
        "ev/v1/gw1/connector/c1/prop",
        "ev/v1/+/connector/+/prop",
        "ev/v1/+/+/+/event/+",
        "ev/v1/gw1/#",
        "ev/v1/#",
        "ev/v1/+/meter/+/prop",
    )
    assert index.match(levels("ev/v1/gw1/connector/c1/prop")) == [
        "ev/v1/gw1/connector/c1/prop", "ev/v1/+/connector/+/prop", "ev/v1/gw1/#", "ev/v1/#",
    ]
    assert index.match(levels("ev/v1/gw2/connector/c9/prop")) == [
        "ev/v1/+/connector/+/prop", "ev/v1/#",
    ]
    assert index.match(levels("ev/v1/gw2/connector/c9/event/fault")) == [
        "ev/v1/+/+/+/event/+", "ev/v1/#",
    ]
    assert index.match(levels("ev/v1/gw2/meter/m/prop")) == ["ev/v1/#", "ev/v1/+/meter/+/prop"]
    assert index.match(levels("other/topic")) == []
    assert len(index) == 6


def test_hash_also_matches_its_parent_level() -> None:
    assert trie("a/b/#").match(levels("a/b")) == ["a/b/#"]
    assert trie("a/b/#").match(levels("a")) == []
    assert trie("a/+").match(levels("a")) == []


def test_a_value_under_several_matching_filters_comes_once_in_first_position() -> None:
    index: FilterTrie[str] = FilterTrie()
    index.add("ev/v1/+/connector/+/prop", "rule-a")
    index.add("ev/v1/#", "rule-b")
    index.add("ev/v1/gw/#", "rule-a")  # rule-a's second filter
    assert index.match(levels("ev/v1/gw/connector/c/prop")) == ["rule-a", "rule-b"]


LEVEL = st.sampled_from(["ev", "v1", "gw1", "gw2", "connector", "meter", "c1", "prop", "event",
                         "fault", "state"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(LEVEL, st.just("+")), min_size=1, max_size=7))
    if draw(st.booleans()):
        parts.append("#")
    return "/".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(filters(), min_size=1, max_size=12),
       st.lists(LEVEL, min_size=1, max_size=8))
def test_the_trie_agrees_with_mqtt_matching(fs: list[str], topic_levels: list[str]) -> None:
    index: FilterTrie[int] = FilterTrie()
    for i, f in enumerate(fs):
        index.add(f, i)
    topic = "/".join(topic_levels)
    expected = [i for i, f in enumerate(fs) if matches(f, topic)]
    assert index.match(topic_levels) == expected


def test_check_filter_reports_what_a_filter_selects() -> None:
    models = builtin_models()
    assert check_filter("$presence", models) == Source(None, "presence", None)
    assert check_filter("ev/v1/+/connector/+/prop", models) == Source("connector", "prop", None)
    assert check_filter("ev/v1/+/connector/+/event/fault", models) == \
        Source("connector", "event", "fault")
    assert check_filter("ev/v1/+/connector/+/svc/remoteStart/reply", models) == \
        Source("connector", "reply", "remoteStart")
    assert check_filter("ev/v1/+/+/+/event/fault", models) == Source(None, "event", "fault")
    assert check_filter("ev/v1/g/meter/#", models) == Source("meter", None, None)
    assert check_filter("ev/v1/+/+/+/+", models) == Source(None, None, None)
