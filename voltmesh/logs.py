"""Logging for every voltmesh process: structlog rendering of stdlib logs.

JSON lines when stderr is not a terminal (or ``json``), readable console lines otherwise.
"""

from __future__ import annotations

import logging
import sys

import structlog


def setup_logging(fmt: str = "auto", level: int = logging.INFO) -> None:
    """Configure the root logger once for the process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if use_json else structlog.processors.ExceptionPrettyPrinter(),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    # aiomqtt forces "mqtt" to WARNING on import; amqtt and uvicorn are chatty at INFO
    for name in ("mqtt", "transitions", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # amqtt logs every refused MQTT 5 probe (our protocol auto-detection) as a warning
    logging.getLogger("amqtt").setLevel(logging.ERROR)
