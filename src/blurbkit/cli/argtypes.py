"""Argument types for numbers with a range: a value outside it is argparse's one usage error (exit
2) before anything loads, instead of a traceback or a silent fallback later."""

from __future__ import annotations

import argparse
import math


def _number(value: str, kind: type) -> int | float:
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"not a finite number: {value!r}")
    return number


def positive_int(value: str) -> int:
    number = _number(value, int)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return int(number)


def non_negative_int(value: str) -> int:
    number = _number(value, int)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return int(number)


def non_negative_float(value: str) -> float:
    number = _number(value, float)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return float(number)


def port(value: str) -> int:
    number = _number(value, int)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (got {value})")
    return int(number)


def names_arg(value: str) -> list[str]:
    """A comma-separated list of names, at least one."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no name in {value!r}")
    return names
