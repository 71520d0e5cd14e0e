"""Log formatters: JSON lines in production, readable lines for `make run`.

Both carry a record's extra fields (event_id, delivery_id, endpoint_id, attempt,
outcome, duration_ms, …) — JSON lines also the `trace_id` and `span_id` of the span
being recorded, if tracing (webhookhub.tracing) — and both scrub anything that looks
like a credential (`whsec_…` signing secrets, `whsk_…` ed25519 keys, `whk_…` API
tokens, `Bearer …` values) from the final line, whatever logged it: a secret must never
reach a log.
"""

import logging
import re

from pythonjsonlogger.json import JsonFormatter

from webhookhub import tracing

SECRET = re.compile(
    r"\b(whsec_|whsk_|whk_)[A-Za-z0-9_\-+/=]{4,}"
    r"|(?i:\b(bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{4,}"
)
# Attributes every LogRecord has; anything else was passed with `extra=`.
STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    def mask(match: re.Match) -> str:
        return f"{match.group(1)}***" if match.group(1) else f"{match.group(2)} ***"

    return SECRET.sub(mask, text)


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line; extras become keys, and the current span's ids."""

    def format(self, record: logging.LogRecord) -> str:
        if "trace_id" not in record.__dict__:  # an attempt's log line names its own span
            record.__dict__.update(tracing.log_fields())
        return redact(super().format(record))


class PlainFormatter(logging.Formatter):
    """`time level logger message key=value …` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in STANDARD and not key.startswith("_")
        ]
        if extras:
            head, sep, rest = line.partition("\n")  # keep a traceback below the line
            line = f"{head} {' '.join(extras)}{sep}{rest}"
        return redact(line)
