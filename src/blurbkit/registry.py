"""A tiny name -> factory registry, the way spaCy builds parts from config by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from blurbkit.errors import BlurbkitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes or functions); `register` is a decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise BlurbkitError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
