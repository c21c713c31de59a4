"""Log lines as text or JSON (LOG_FORMAT), each carrying the delivery, codebase and job it
concerns: the webhook and the jobs set those in a context, and every line logged inside it,
by our code or a library's, gets them."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_CONTEXT: dict[str, ContextVar[Any]] = {
    name: ContextVar(name, default=None) for name in ("delivery_id", "codebase_id", "job_id")
}


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every line logged inside carries `fields` (delivery_id, codebase_id, job_id)."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts the context's fields on every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the context's fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Format the handlers of the root logger (one is added if it has none) and of arq's."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(min(root.level or level, level))
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    for logger in (root, logging.getLogger("arq")):
        for handler in logger.handlers:
            handler.setFormatter(formatter)
            if not any(isinstance(f, ContextFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())
