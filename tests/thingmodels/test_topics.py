import pytest

from thingmodels import Kind, Topic, TopicError, check_id, parse
from thingmodels.topics import downlink_filters, matches, shared, uplink_filters


@pytest.mark.parametrize("text", [
    "ev/v1/gw1/connector/3201-01/prop",
    "ev/v1/gw1/connector/3201-01/event/sessionEnded",
    "ev/v1/gw1/connector/3201-01/event/authorize/reply",
    "ev/v1/gw1/connector/3201-01/svc/remoteStart",
    "ev/v1/gw1/connector/3201-01/svc/remoteStart/reply",
    "ev/v1/gw1/charger/CP-1/state",
    "ev/v1/gw1/gateway/gw1/desired",
])
def test_parse_render_roundtrip(text: str) -> None:
    assert parse(text).render() == text


def test_reply_topics() -> None:
    call = Topic("gw", "connector", "c1", Kind.SVC, "remoteStop")
    assert call.reply().render() == "ev/v1/gw/connector/c1/svc/remoteStop/reply"
    with pytest.raises(TopicError):
        Topic("gw", "connector", "c1", Kind.PROP).reply()


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "a#", "$sys", "tab\there", "x" * 129, " pad",
                                 "nul\x00"])
def test_ids_that_cannot_be_a_level_are_refused(bad: str) -> None:
    with pytest.raises(TopicError):
        check_id(bad)
    with pytest.raises(TopicError):
        Topic("gw", "charger", bad, Kind.PROP)


@pytest.mark.parametrize("bad", [
    "ev/v2/gw/charger/c/prop", "ev/v1/gw/charger/c", "ev/v1/gw/charger/c/svc",
    "ev/v1/gw/charger/c/svc/remoteStart/extra", "ev/v1/gw/Charger/c/prop",
    "ev/v1/gw/charger/c/event/BadName", "other/topic",
])
def test_topics_outside_the_grammar(bad: str) -> None:
    with pytest.raises(TopicError):
        parse(bad)


def test_filters_and_matching() -> None:
    assert matches("ev/v1/+/+/+/prop", "ev/v1/gw/meter/m1/prop")
    assert not matches("ev/v1/+/+/+/prop", "ev/v1/gw/meter/m1/state")
    assert matches(shared("g", "ev/v1/#"), "ev/v1/gw/meter/m1/state")
    assert all(f.startswith("ev/v1/gwX/") for f in downlink_filters("gwX"))
    assert len(uplink_filters()) == 4
    with pytest.raises(TopicError):
        downlink_filters("a/b")
