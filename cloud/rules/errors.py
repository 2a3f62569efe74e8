"""The exception tree of :mod:`cloud.rules`.

::

    CloudError                       (cloud.errors)
    ├── ConfigError                  (cloud.errors)
    │   └── RulesFileError           a rule file is invalid: names file, line and rule id
    └── RecordingError               a recorded-messages line (JSONL) is not a message

Evaluation never raises: a missing field or a type error in an expression means "no match" for
that message and is counted per rule (``voltmesh_rules_eval_errors_total{rule, reason}``).
"""

from __future__ import annotations

from cloud.errors import CloudError, ConfigError


class RulesFileError(ConfigError):
    """A rule file is invalid.

    ``file`` and ``line`` locate the problem, ``rule`` is the id of the rule it is in (``None``
    when the problem is outside any rule or the rule has no readable id), ``path`` the place
    inside the document (``rules[2].do[0].influx.fields.power``).
    """

    def __init__(self, file: str, line: int | None, rule: str | None, path: str,
                 message: str) -> None:
        self.file = file
        self.line = line
        self.rule = rule
        self.path = path
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        in_rule = f" rule {rule!r}:" if rule is not None else ""
        super().__init__(f"{where}:{in_rule} {path or '<root>'}: {message}")


class RecordingError(CloudError):
    """A line of a recorded-messages file is not a valid recorded message."""
