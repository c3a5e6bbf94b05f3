"""The one error type of a bad experiment spec: every problem names its field."""

from __future__ import annotations

from typing import Iterable


class SpecError(ValueError):
    """A bad experiment spec. ``problems`` holds every ``(field, reason)`` found, in file order;
    ``field``/``reason`` are the first. ``str()`` gives one line per problem."""

    def __init__(self, field: str, reason: str, source: str | None = None, *, more: Iterable[tuple[str, str]] = ()):
        self.problems: list[tuple[str, str]] = [(field, reason), *more]
        self.field, self.reason = field, reason
        self.source = source
        super().__init__("\n".join(self.lines()))

    @classmethod
    def of(cls, problems: list[tuple[str, str]], source: str | None = None) -> "SpecError":
        (field, reason), *more = problems
        return cls(field, reason, source, more=more)

    def at(self, source: str | None) -> "SpecError":
        """The same problems, attributed to ``source`` (a file name)."""
        return SpecError.of(self.problems, source)

    def lines(self) -> list[str]:
        where = f"{self.source}: " if self.source else ""
        return [f"{where}{field}: {reason}" if field else f"{where}{reason}" for field, reason in self.problems]


class Problems:
    """Collects problems so a check can report all of them at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, reason: str) -> None:
        self.items.append((field, reason))

    def extend(self, error: SpecError) -> None:
        self.items.extend(error.problems)

    def raise_if_any(self, source: str | None = None) -> None:
        if self.items:
            raise SpecError.of(self.items, source)
