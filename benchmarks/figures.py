"""Figures of `make bench` (benchmarks/bench.py): a value beside its peer's, measured in
the same run, and how they are printed and kept.

Every value is the median (min-max) over repetitions in which ours and the peer's
alternate (ours first on even repetitions, the peer first on odd ones), so the drift of
a shared, noisy machine falls on both. The ratio is ours over the peer's, medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """`ratio` bounds ours / the peer's; `value` bounds ours; `at_least`: both are floors
    (rates), else ceilings (times, sizes)."""

    ratio: float | None = None
    value: float | None = None
    at_least: bool = False
    note: str = ""

    def text(self, unit: str) -> str:
        sign = "≥" if self.at_least else "≤"
        parts = [f"{sign} {_num(self.value)} {unit}"] if self.value is not None else []
        parts += [f"{sign} {self.ratio:g} ×"] if self.ratio is not None else []
        return " and ".join(parts) + (f" {self.note}" if self.note else "")

    def met(self, value: float, ratio: float | None) -> bool:
        checks = [(value, self.value), (ratio, self.ratio)]
        ok = [
            v >= bound if self.at_least else v <= bound
            for v, bound in checks
            if bound is not None and v is not None
        ]
        return bool(ok) and all(ok) and (self.ratio is None or ratio is not None)


@dataclass
class Figure:
    key: str
    measure: str
    unit: str
    ours: list[float] = field(default_factory=list)
    peer: str = ""
    theirs: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def value(self) -> float:
        return statistics.median(self.ours) if self.ours else float("nan")

    @property
    def peer_value(self) -> float | None:
        return statistics.median(self.theirs) if self.theirs else None

    @property
    def ratio(self) -> float | None:
        peer = self.peer_value
        return self.value / peer if peer else None

    def met(self, judged: bool) -> bool | None:
        if not judged or self.target is None or not self.ours:
            return None
        return self.target.met(self.value, self.ratio)

    def row(self, judged: bool) -> str:
        met = {True: "yes", False: "**no**", None: "–"}[self.met(judged)]
        ratio = f"{self.ratio:.2f} ×" if self.ratio is not None else "–"
        target = self.target.text(self.unit) if self.target else "–"
        measure = self.measure + (f" ({self.note})" if self.note else "")
        cells = [self.key, measure, _spread(self.ours), self.unit, self.peer or "–", _spread(self.theirs)]
        return "| " + " | ".join([*cells, ratio, target, met]) + " |"

    def as_json(self, judged: bool) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "value": self.value if self.ours else None,
            "min": min(self.ours, default=None),
            "max": max(self.ours, default=None),
            "runs": len(self.ours),
            "unit": self.unit,
            "peer": self.peer or None,
            "peer_value": self.peer_value,
            "ratio": self.ratio,
            "target": self.target.text(self.unit) if self.target else None,
            "met": self.met(judged),
            "note": self.note or None,
        }


HEADER = "| # | measure | value: median (min–max) | unit | peer | peer value | ratio | target | met |"
RULE = "|---|---|---|---|---|---|---|---|---|"


def table(figures: list[Figure], judged: bool) -> str:
    return "\n".join([HEADER, RULE, *(f.row(judged) for f in figures)])


def interleaved(
    reps: int, ours: Callable[[], float], theirs: Callable[[], float] | None
) -> tuple[list[float], list[float]]:
    """`reps` of each, alternating which goes first."""
    mine: list[float] = []
    peer: list[float] = []
    for n in range(reps):
        order = [(ours, mine), (theirs, peer)] if n % 2 == 0 else [(theirs, peer), (ours, mine)]
        for run, into in order:
            if run is not None:
                into.append(run())
    return mine, peer


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return _num(values[0])
    return f"{_num(statistics.median(values))} ({_num(min(values))}–{_num(max(values))})"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
