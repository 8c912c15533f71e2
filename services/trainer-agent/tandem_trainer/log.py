"""Structured logging: one JSON object per line on stderr, fields as keys.

``get_logger(name).info("step trained", step=3)`` keeps call sites short
and the output machine-readable (the control plane's pino logs look the
same).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(time.time() * 1000),
            "level": record.levelname.lower(),
            "name": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["err"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class StructLogger:
    """A logger whose methods take the message plus keyword fields."""

    def __init__(self, logger: logging.Logger, fields: dict[str, Any] | None = None) -> None:
        self._logger = logger
        self._fields = dict(fields or {})

    def child(self, **fields: Any) -> "StructLogger":
        return StructLogger(self._logger, {**self._fields, **fields})

    def _log(self, level: int, msg: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, exc_info=exc_info, extra={"fields": {**self._fields, **fields}})

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, False, fields)

    def error(self, msg: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, msg, exc_info, fields)


def configure_logging(level: str = "info") -> None:
    """Installs the JSON handler on the package's root logger (main only)."""
    root = logging.getLogger("tandem_trainer")
    if not any(getattr(h, "_tandem", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter())
        handler._tandem = True  # type: ignore[attr-defined]  # marker: installed once
        root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str) -> StructLogger:
    return StructLogger(logging.getLogger(f"tandem_trainer.{name}"))
