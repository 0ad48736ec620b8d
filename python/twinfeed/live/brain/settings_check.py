"""Validation of the live settings TOML at load: every section, every field.

A wrong type used to pass the load and fail later, mid-session (``max_position = "lots"``
raised a TypeError inside a risk check with an order already sent), and a string where a
list was expected became a list of characters (``symbols = "BTCUSDT"`` -> B, T, C, ...).
Here each field is checked against its dataclass annotation (bool, int, float, str,
Literal, tuple of str, dict) and a range, and an unknown key is named with the closest known
one. A :class:`SettingsError` says the file, the line, the section, the field, what was
expected and what was found.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

__all__ = ["SettingsError", "check_section", "check_sections", "closest", "key_line"]

#: Largest integer accepted (the records and the DB hold i64).
_I64_MAX = 2**63 - 1

Check = Callable[[Any], str | None]


class SettingsError(ValueError):
    """A setting of the live TOML is wrong; the message names file, line, section, field."""


def positive(value: Any) -> str | None:
    return None if value > 0 else "a value > 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "a value >= 0"


def at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "a value >= 1"


def non_empty(value: Any) -> str | None:
    return None if len(value) > 0 else "a non-empty value"


def speed(value: Any) -> str | None:
    if value == "max" or (not isinstance(value, str) and value > 0):
        return None
    return 'a number > 0 or "max"'


def strategy_spec(value: Any) -> str | None:
    module, sep, name = value.partition(":")
    return None if sep and module and name else '"module:Class"'


def symbols(value: Any) -> str | None:
    if not value:
        return "a non-empty list of symbols"
    if any(not symbol or symbol != symbol.strip() for symbol in value):
        return "symbols without blanks"
    if len(set(value)) != len(value):
        return "each symbol once"
    return None


def closest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def key_line(text: str, section: str | None, key: str) -> int | None:
    """The 1-based line of ``key = ...`` in ``[section]`` (or of ``[section]`` itself when
    ``key`` is empty), if it can be found; tomllib does not keep positions."""
    current: str | None = None
    key_re = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[\s*([^\]\s]+)\s*\]", line)
        if header:
            current = header.group(1)
            if not key and current == section:
                return number
            continue
        if key and current == section and key_re.match(line):
            return number
    return None


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _expected(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " or ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(
            _expected(arg) for arg in typing.get_args(annotation) if arg is not type(None)
        )
    if origin is tuple or origin is list:
        return "a list of strings"
    if origin is dict or annotation is dict:
        return "a table"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(annotation, str(annotation))


def _coerce(annotation: Any, value: Any) -> tuple[bool, Any]:
    """(ok, value converted to the annotation) for one TOML value."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return value in typing.get_args(annotation), value
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            ok, converted = _coerce(arg, value)
            if ok:
                return True, converted
        return False, value
    if origin is tuple or origin is list:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            return False, value
        return True, tuple(value) if origin is tuple else list(value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _I64_MAX
        return ok, value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        if not math.isfinite(value):
            return False, value
        return True, float(value)
    if annotation is str:
        return isinstance(value, str), value
    return True, value  # Any and types this checker does not know


def check_section(
    path: str | os.PathLike[str],
    text: str,
    section: str,
    values: Mapping[str, Any],
    cls: type,
    *,
    checks: Mapping[str, Check] | None = None,
    exclude: Iterable[str] = (),
) -> dict[str, Any]:
    """``values`` of ``[section]`` checked against the fields of dataclass ``cls`` (minus
    ``exclude``) and the range ``checks``; returns them converted (lists to tuples, ints to
    floats where a float is expected). Raises :class:`SettingsError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)} - set(exclude)
    checks = checks or {}

    def where(key: str) -> str:
        line = key_line(text, section, key)
        return f"{path}:{line}" if line else f"{path}"

    if not isinstance(values, Mapping):
        raise SettingsError(f"{where('')}: [{section}] must be a table, got {_describe(values)}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise SettingsError(
                f"{where(key)}: [{section}] unknown setting {key!r}{closest(key, fields)}; "
                f"known: {', '.join(sorted(fields))}"
            )
        annotation = hints[key]
        ok, converted = _coerce(annotation, value)
        if not ok:
            raise SettingsError(
                f"{where(key)}: [{section}] {key}: expected {_expected(annotation)}, "
                f"got {_describe(value)}"
            )
        check = checks.get(key)
        problem = check(converted) if check is not None else None
        if problem is not None:
            raise SettingsError(
                f"{where(key)}: [{section}] {key}: expected {problem}, got {_describe(value)}"
            )
        out[key] = converted
    return out


def check_sections(
    path: str | os.PathLike[str], text: str, data: Mapping[str, Any], known: Iterable[str]
) -> None:
    """Refuses a top-level key that is not one of the ``known`` sections, or is not a table."""
    known = set(known)
    for name, value in data.items():
        if name not in known:
            line = key_line(text, name, "") or key_line(text, None, name)
            at = f"{path}:{line}" if line else f"{path}"
            raise SettingsError(
                f"{at}: unknown section [{name}]{closest(name, known)}; known: "
                f"{', '.join(f'[{k}]' for k in sorted(known))}"
            )
        if not isinstance(value, dict):
            line = key_line(text, None, name)
            at = f"{path}:{line}" if line else f"{path}"
            raise SettingsError(f"{at}: [{name}] must be a table, got {_describe(value)}")


#: Range checks per section and field (the type comes from the dataclass annotation).
CHECKS: dict[str, dict[str, Check]] = {
    "session": {
        "capture": non_empty,
        "speed": speed,
        "duration_s": positive,
        "db": non_empty,
        "settle_s": non_negative,
        "latency_ns": non_negative,
        "control_socket": non_empty,
    },
    "strategy": {"spec": strategy_spec},
    "live": {
        "symbols": symbols,
        "poll_timeout_s": positive,
        "max_batch_rows": at_least_one,
        "snapshot_interval_ns": positive,
        "health_interval_s": positive,
        "stale_after_s": positive,
        "degraded_after_s": positive,
        "drain_timeout_s": non_negative,
    },
    "risk": {
        "max_order_qty": positive,
        "max_position": non_negative,
        "max_notional": positive,
        "max_open_orders": at_least_one,
        "price_band_bps": positive,
        "orders_per_second": positive,
        "burst": at_least_one,
    },
    "faults": {
        "heartbeat_interval_s": positive,
        "degraded_after_heartbeats": positive,
        "stale_after_heartbeats": positive,
        "silence_degraded_heartbeats": non_negative,
        "silence_stale_heartbeats": non_negative,
        "max_lag_heartbeats": non_negative,
        "resume_after_s": non_negative,
        "restart_backoff_s": non_negative,
        "unwind_retry_s": positive,
        "venue_retry_s": positive,
        "venue_retry_max_s": positive,
        "rate_limit_backoff_s": non_negative,
    },
}


@dataclasses.dataclass
class _Strategy:
    """The fields of ``[strategy]``."""

    spec: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


def strategy_section(
    path: str | os.PathLike[str], text: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """``[strategy]`` checked: ``spec`` ("module:Class") and ``params`` (a table)."""
    return check_section(path, text, "strategy", values, _Strategy, checks=CHECKS["strategy"])
