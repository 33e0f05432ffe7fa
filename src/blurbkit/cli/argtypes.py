"""Argument types for numbers with a range: a value outside it is argparse's one usage error (exit
2) before anything loads, instead of a traceback or a silent fallback later."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def _number(value: str, kind: type) -> int | float:
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"not a finite number: {value!r}")
    return number


def _at_least(kind: type, least: int) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` that is `least` or more."""
    def parse(value: str) -> Any:
        number = _number(value, kind)
        if number < least:
            raise argparse.ArgumentTypeError(f"must be {'at least 1' if least == 1 else f'{least} or more'} (got {value})")
        return kind(number)

    return parse


positive_int = _at_least(int, 1)
non_negative_int = _at_least(int, 0)
non_negative_float = _at_least(float, 0)


def at_least(least: int) -> Callable[[str], Any]:
    """An argparse type: an integer `least` or more."""
    return _at_least(int, least)


def finite_float(value: str) -> float:
    """Any finite number (its range is the option's own check): nan and inf are refused here."""
    return float(_number(value, float))


def positive_float(value: str) -> float:
    number = _number(value, float)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {value})")
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
