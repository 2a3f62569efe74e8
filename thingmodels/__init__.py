"""voltmesh's contract: thing models, the MQTT topic grammar and the message envelope.

Nothing here imports any other voltmesh package.

Exceptions (all from :mod:`thingmodels.errors`)::

    ThingModelError
    ├── ModelFileError      invalid YAML data file (file, path, line)
    ├── UnknownModelError   unknown product / property / event / service
    ├── PayloadError        params that do not fit the model
    ├── TopicError          a topic or id outside the grammar
    └── EnvelopeError       bytes that are not a valid envelope
"""

from thingmodels.envelope import Envelope, Sample, decode, encode, reply_to
from thingmodels.errors import (
    EnvelopeError,
    ModelFileError,
    PayloadError,
    ThingModelError,
    TopicError,
    UnknownModelError,
)
from thingmodels.ids import new_id, now_ms
from thingmodels.loader import ModelRegistry, ThingModel, builtin_models, load_model
from thingmodels.topics import Kind, Topic, check_id, parse

__all__ = [
    "Envelope",
    "EnvelopeError",
    "Kind",
    "ModelFileError",
    "ModelRegistry",
    "PayloadError",
    "Sample",
    "ThingModel",
    "ThingModelError",
    "Topic",
    "TopicError",
    "UnknownModelError",
    "builtin_models",
    "check_id",
    "decode",
    "encode",
    "load_model",
    "new_id",
    "now_ms",
    "parse",
    "reply_to",
]
