"""`make bench --runs N`: every ratio of a run is found by its key, and its run-to-run spread is
the values, median and range over the runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.project import ROOT

from modelrepo_gen.bench.spread import ratios, spread


def one_run(batching_gain: float, served: float) -> dict:
    return {
        "machine": {"cores": 2},
        "inference": [{"model": "QuartzNet mini", "batch": 8, "eager_over_onnxruntime": 2.5}],
        "serving": {
            "ratios": {
                "batching_on_over_off_throughput": {"1": 1.0, "8": batching_gain},
                "served_transcripts_equal_in_process": "5/5",  # a count, not a ratio
            }
        },
        "nlp": {
            "pipelines": [{"pipeline": "nlp_qa", "ratios": {"served_over_in_process": served}}]
        },
        "speech": {"speed": {"served_over_in_process": float("nan"), "flag_over_x": True}},
    }


def test_ratios_are_found_by_their_key_and_named_by_their_rows() -> None:
    assert ratios(one_run(1.8, 0.4)) == {
        "inference[QuartzNet mini 8].eager_over_onnxruntime": 2.5,
        "serving.ratios.batching_on_over_off_throughput.1": 1.0,
        "serving.ratios.batching_on_over_off_throughput.8": 1.8,
        "nlp.pipelines[nlp_qa].ratios.served_over_in_process": 0.4,
    }


def test_spread_is_each_ratios_values_median_and_range() -> None:
    runs = [one_run(1.8, 0.4), one_run(1.2, 0.5), one_run(2.1, 0.3)]
    rows = {row["ratio"]: row for row in spread(runs)}
    gain = rows["serving.ratios.batching_on_over_off_throughput.8"]
    assert gain["values"] == [1.8, 1.2, 2.1]
    assert (gain["median"], gain["low"], gain["high"]) == (1.8, 1.2, 2.1)
    steady = rows["inference[QuartzNet mini 8].eager_over_onnxruntime"]
    assert steady["low"] == steady["high"] == 2.5


def test_a_ratio_missing_from_a_run_is_left_out() -> None:
    partial = one_run(1.5, 0.5)
    del partial["nlp"]
    names = {row["ratio"] for row in spread([one_run(1.8, 0.4), partial])}
    assert "nlp.pipelines[nlp_qa].ratios.served_over_in_process" not in names
    assert "serving.ratios.batching_on_over_off_throughput.8" in names


@pytest.mark.parametrize("runs", ["0", "-2"])
def test_fewer_than_one_run_is_refused_before_any_work(runs: str, tmp_path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelrepo_gen.bench",
            "--runs",
            runs,
            "--output",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"--runs must be at least 1, got {runs}" in done.stderr
    assert not (tmp_path / "o").exists()
