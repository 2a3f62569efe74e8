"""The cloud rule engine: rule files in, actions out (no I/O).

Operators route messages with rule files (``config/rules/*.yaml``), one statement per rule
(``from`` topic filters or ``$presence``, an optional ``where``) and a list of actions
(``influx``, ``alarm``, ``invoke``, ``webhook``, ``republish``, ``billing``) that become the
values of :mod:`cloud.actions` for the sinks. Expressions are rule-engine's grammar, compiled
once at load. See ``docs/rules.md``.

Exceptions (:mod:`cloud.rules.errors`)::

    CloudError
    ├── ConfigError
    │   └── RulesFileError    an invalid rule file (file, line, rule id)
    └── RecordingError        a recorded-messages line that is not a message

Public API::

    RuleSet.load(paths) -> RuleSet
    RuleSet.evaluate(topic, env) -> list[Action]
    RuleSet.evaluate_presence(gw, product, device, online, ts_ms, session) -> list[Action]
    RuleEngine(paths, registry, reload_interval=2.0)   # + async run(): hot reload
    RulesConfig(paths=["config/rules"], reload_interval=2.0)
"""

from cloud.rules.config import RulesConfig
from cloud.rules.engine import RuleEngine
from cloud.rules.errors import RecordingError, RulesFileError
from cloud.rules.jsonl import decode_line, encode_line
from cloud.rules.loader import CompiledRule
from cloud.rules.ruleset import RuleSet
from cloud.rules.stats import CountingStats, RuleStats

__all__ = [
    "CompiledRule",
    "CountingStats",
    "RecordingError",
    "RuleEngine",
    "RuleSet",
    "RuleStats",
    "RulesConfig",
    "RulesFileError",
    "decode_line",
    "encode_line",
]
