"""What every webhookhub operations command shares: exit codes, --quiet, progress,
time arguments and who to record as having acted.

A command is a thin shell: it parses and checks its arguments, calls a service, and
prints what happened. Any failure exits non-zero with one line on stderr
(`CommandError: …`); bad arguments exit 2 with the usage line.
"""

import getpass
import re
import time
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def one_line(error: Exception) -> str:
    """A ValidationError or database error as one line naming the problem."""
    if isinstance(error, ValidationError):
        if hasattr(error, "error_dict"):
            return "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
            )
        return " ".join(error.messages)
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """An aware datetime from ISO 8601 (`2026-11-20T08:00Z`, `2026-11-20`) or an age
    (`90m`, `24h`, `7d`: that long ago). Naive times are taken as UTC."""
    now = now or timezone.now()
    value = value.strip()
    match = RELATIVE.match(value)
    if match:
        return now - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime(day.year, day.month, day.day)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"{value!r} is not a time: give ISO 8601 (2026-11-20T08:00Z) or an age (24h, 7d)"
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.UTC)
    return parsed


class Progress:
    """Running counts on stderr while a long command works.

    Only on a terminal and never with --quiet, so cron mail and logs stay clean.
    Redrawn at most every `every` seconds.
    """

    def __init__(self, stream, *, label: str, total: int | None = None, enabled: bool = True):
        self.stream, self.label, self.total = stream, label, total
        self.enabled = enabled
        self.done = 0
        self.started = time.monotonic()
        self.drawn_at = 0.0
        self.every = 0.2

    def __call__(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self.drawn_at >= self.every:
            self._draw()

    def _draw(self, end: str = "") -> None:
        self.drawn_at = time.monotonic()
        rate = self.done / max(self.drawn_at - self.started, 1e-6)
        of = f"/{self.total:,}" if self.total is not None else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        self.stream.write(f"\r{self.label}: {self.done:,}{of}{pct}  {rate:,.0f}/s{end}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self._draw(end="\n")


class OpsCommand(BaseCommand):
    """Base for webhookhub's operations commands."""

    changes_data = True  # adds --dry-run

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--quiet",
            action="store_true",
            help="No progress output (it is off anyway when stderr is not a terminal).",
        )
        if self.changes_data:
            parser.add_argument(
                "--dry-run", action="store_true", help="Show what would be done; change nothing."
            )
        return parser

    def execute(self, *args, **options):
        self.quiet = options.get("quiet", False)
        self.verbosity = options.get("verbosity", 1)
        try:
            return super().execute(*args, **options)
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(f"database error: {one_line(exc)}") from exc

    def progress(self, label: str, total: int | None = None) -> Progress:
        stream = self.stderr._out
        tty = getattr(stream, "isatty", lambda: False)()
        return Progress(stream, label=label, total=total, enabled=tty and not self.quiet)

    def by(self) -> str:
        """Who acted, as attempts and the audit trail record it: `command:<name>` and the
        OS user."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return f"command:{self.command_name} ({user})"[:150]

    @property
    def command_name(self) -> str:
        return self.__class__.__module__.rsplit(".", 1)[-1]
