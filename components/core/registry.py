"""A generic name -> factory registry.

Every family that params.yaml selects by name (models, losses, optimisers, schedulers,
augmentations) is one :class:`Registry`. Registering a name twice is an error; asking for an
unknown name is an error that lists the valid names and suggests the closest ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from components.core.errors import UserError

T = TypeVar("T")


class RegistryError(UserError, KeyError):
    """Unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered factory and its one-line description."""

    name: str
    factory: Callable[..., T]
    description: str


class Registry(Generic[T]):
    """Maps short names to factories.

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"model"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name``.

        Raises:
            RegistryError: If ``name`` is already registered.
        """

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory, description)
            return factory

        return deco

    def add(self, name: str, factory: Callable[..., T], description: str = "") -> None:
        """Register ``factory`` under ``name`` (non-decorator form)."""
        key = name.lower()
        if key in self._entries:
            raise RegistryError(f"{self.kind} '{name}' is already registered")
        if not description:
            lines = (factory.__doc__ or "").strip().splitlines()
            description = lines[0] if lines else ""
        self._entries[key] = Entry(name=key, factory=factory, description=description)

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory registered under ``name``.

        Raises:
            RegistryError: Unknown name; the message lists valid names and close matches.
        """
        key = str(name).lower()
        if key not in self._entries:
            close = difflib.get_close_matches(key, list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'.{hint} Valid names: {', '.join(sorted(self._entries))}"
            )
        return self._entries[key].factory

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> T:
        """Call the factory registered under ``name`` with the given arguments."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line description) pairs, sorted by name."""
        return [(e.name, e.description) for e in sorted(self._entries.values(), key=lambda e: e.name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
