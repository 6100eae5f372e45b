"""How much the benchmark's ratios move from run to run (`--runs N`).

A shared 2-core machine is noisy: one run's ratio can be off by tens of percent. With --runs N
the whole benchmark runs N times; the report's tables come from the first run (each ratio
measured within one run), and this adds every ratio's value in each run, its median and its
range, so a reader sees which differences hold.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

RATIO_MARK = "_over_"  # a ratio's key says what it divides: served_over_in_process, ...
# What names a row of a list of measurements, in a ratio's path: inference[QuartzNet mini 8].
IDENTITY = ("pipeline", "model", "batch", "concurrency", "dynamic_batching")


def _label(index: int, item: Any) -> str:
    named = [str(item[key]) for key in IDENTITY if isinstance(item, dict) and key in item]
    return f"[{' '.join(named)}]" if named else f"[{index}]"


def ratios(results: Any, path: str = "") -> dict[str, float]:
    """Every ratio in one run's results (a numeric value under a key naming a division, or
    inside a mapping so named), by its path: "serving.ratios.batching_on_over_off_throughput.4",
    "inference[QuartzNet mini 8].eager_over_onnxruntime"."""
    found: dict[str, float] = {}
    if isinstance(results, dict):
        items = [(f"{path}.{key}" if path else str(key), value) for key, value in results.items()]
    elif isinstance(results, list):
        items = [(path + _label(index, item), item) for index, item in enumerate(results)]
    else:
        return found
    for where, value in items:
        if isinstance(value, (dict, list)):
            found.update(ratios(value, where))
        elif (
            RATIO_MARK in where
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        ):
            found[where] = float(value)
    return found


def spread(runs: list[dict]) -> list[dict]:
    """For each ratio found in every run: its values in run order, median, lowest and highest."""
    found = [ratios(results) for results in runs]
    common = [name for name in found[0] if all(name in run for run in found[1:])]
    rows = []
    for name in common:
        values = [run[name] for run in found]
        rows.append(
            {
                "ratio": name,
                "values": values,
                "median": statistics.median(values),
                "low": min(values),
                "high": max(values),
            }
        )
    return rows
