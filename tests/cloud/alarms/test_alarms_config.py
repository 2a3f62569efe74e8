"""Alarm configuration: typed, unknown keys refused, clear errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cloud.alarms.config import AlarmsConfig, EmailChannelConfig, TemplateChannelConfig


def channels(*items: dict[str, Any]) -> AlarmsConfig:
    return AlarmsConfig.model_validate({"channels": list(items)})


EMAIL = {"type": "email", "host": "smtp.example.com", "port": 587, "starttls": True,
         "user": "alarms", "password": "pw", "from": "alarms@example.com",
         "to": ["noc@example.com"]}


def test_defaults_and_names() -> None:
    config = channels({"type": "webhook", "url": "https://ops.example.com/hook"},
                      {"type": "webhook", "url": "https://b.example.com/", "name": "backup"},
                      {"type": "webhook", "url": "http://127.0.0.1:8080/x"})
    assert [c.name for c in config.channels] == ["webhook1", "backup", "webhook3"]
    assert config.channels[0].min_level == "warning"
    assert config.channels[0].events == ["raised", "cleared"]
    assert AlarmsConfig().channels == [] and AlarmsConfig().attempts == 4


def test_email_settings() -> None:
    (email,) = channels(EMAIL).channels
    assert isinstance(email, EmailChannelConfig)
    assert email.sender == "alarms@example.com" and email.port == 587 and email.starttls
    assert email.password is not None and email.password.get_secret_value() == "pw"
    assert "pw" not in repr(email)  # secrets stay out of logs


@pytest.mark.parametrize(("item", "message"), [
    ({"type": "webhook", "url": "https://x.example.com", "retries": 3}, "Extra inputs"),
    ({"type": "pager", "url": "x"}, "does not match any of the expected tags"),
    ({"type": "webhook", "url": "ftp://x.example.com"}, "http(s)"),
    ({"type": "webhook", "url": "https://x.example.com", "min_level": "severe"}, "min_level"),
    ({"type": "webhook", "url": "https://x.example.com", "events": ["exploded"]}, "events"),
    ({"type": "webhook", "url": "https://x.example.com", "events": []}, "at least 1"),
    ({**EMAIL, "tls": True}, "not both"),
    ({**EMAIL, "from": "nobody"}, "not an e-mail address"),
    ({**EMAIL, "to": []}, "at least 1"),
    ({**EMAIL, "subject": "{type} {colour}"}, "unknown fields ['colour']"),
    ({"type": "sms", "gateway": "g", "recipients": ["12ab"], "template_id": "T"},
     "not phone numbers"),
    ({"type": "wechat", "gateway": "g", "recipients": ["+86 138"], "template_id": "T"},
     "not openids"),
    ({"type": "sms", "gateway": "g", "recipients": ["+8613800138000"], "template_id": "T",
      "params": {"a": "{nope}"}}, "unknown fields"),
])
def test_bad_channels_are_refused_clearly(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        channels(item)
    assert message in str(exc.value)


def test_duplicate_names_and_unknown_top_level_keys() -> None:
    with pytest.raises(ValidationError, match="used twice"):
        channels({"type": "webhook", "url": "https://a.example.com", "name": "x"},
                 {"type": "webhook", "url": "https://b.example.com", "name": "x"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AlarmsConfig.model_validate({"sweep": 3})
    with pytest.raises(ValidationError):
        AlarmsConfig.model_validate({"sweep_interval": 0})


def test_template_channel_defaults() -> None:
    (sms,) = channels({"type": "sms", "gateway": "aliyun", "recipients": ["+8613800138000"],
                       "template_id": "SMS_1", "sign_name": "voltmesh"}).channels
    assert isinstance(sms, TemplateChannelConfig)
    assert set(sms.params) == {"type", "level", "device", "event", "time"}
