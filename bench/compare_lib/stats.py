"""Turn the workers' raw nanoseconds into the numbers the report prints."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .workloads import HALT, Workload


@dataclass(frozen=True)
class Spread:
    """Median and the 10th and 90th percentiles of a sample, in microseconds."""

    median: float
    p10: float
    p90: float
    count: int

    @classmethod
    def of(cls, values_us: Sequence[float]) -> Spread:
        if not values_us:
            raise ValueError("no values to summarise")
        if len(values_us) == 1:
            only = values_us[0]
            return cls(only, only, only, 1)
        deciles = statistics.quantiles(values_us, n=10, method="inclusive")
        return cls(statistics.median(values_us), deciles[0], deciles[-1], len(values_us))


@dataclass(frozen=True)
class Summary:
    """Everything the report says about one system on one workload and storage."""

    per_unit: Spread
    round_medians: tuple[float, float]
    first_tenth: Spread | None = None
    last_tenth: Spread | None = None

    @property
    def growth(self) -> float | None:
        """Last tenth over first tenth of the growing-state workload, by median."""
        if self.first_tenth is None or self.last_tenth is None:
            return None
        return self.last_tenth.median / self.first_tenth.median


def summarise(workload: Workload, results: Iterable[dict[str, Any]]) -> Summary:
    """Pool the runs of every round of one (system, workload, storage)."""
    units = 1 if workload.kind == HALT else workload.steps
    per_unit: list[float] = []
    first: list[float] = []
    last: list[float] = []
    round_medians: list[float] = []
    for result in results:
        values = [ns / units / 1000 for ns in result["run_ns"]]
        per_unit.extend(values)
        round_medians.append(statistics.median(values))
        for positions in result["position_ns"]:
            tenth = max(1, len(positions) // 10)
            first.extend(ns / 1000 for ns in positions[:tenth])
            last.extend(ns / 1000 for ns in positions[-tenth:])
    return Summary(
        per_unit=Spread.of(per_unit),
        round_medians=(min(round_medians), max(round_medians)),
        first_tenth=Spread.of(first) if first else None,
        last_tenth=Spread.of(last) if last else None,
    )


def ratio(value: Summary | None, base: Summary | None) -> float | None:
    """Median over median, or None when either side was not measured."""
    if value is None or base is None or base.per_unit.median <= 0:
        return None
    return value.per_unit.median / base.per_unit.median
