"""`python -m modelrepo_gen.bench --quick` runs end to end and reports every measurement."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelrepo_gen.bench.serving import LIBRIVOX

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["QuartzNet mini", "Jasper mini"]
FORMATS = [("onnx", "fp32"), ("torchscript", "fp32"), ("onnx", "fp16")]


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict]:
    if not any(LIBRIVOX.glob("*.wav")):
        pytest.skip(f"no LibriVox speech under {LIBRIVOX} (make speech installs it)")
    output = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "modelrepo_gen.bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (output / "results.md").read_text()
    return done.stdout, table, json.loads((output / "results.json").read_text())


@pytest.mark.server
def test_quick_benchmark_prints_and_writes_the_table(quick_run: tuple[str, str, dict]) -> None:
    stdout, table, _ = quick_run
    assert table.strip() in stdout  # printed as written
    assert re.search(r"Machine: \d+ cores, .+Packages: torch ", table, re.S)
    assert "random" in table  # the weights caveat in the header
    for model in MODELS:
        for backend, precision in FORMATS:
            assert f"| {model} | {backend} | {precision} |" in table
        for batch in (1, 8):
            assert f"| {model} | {batch} |" in table
    for mode in ("on (default)", "off (disabled)"):
        for concurrency in (1, 4, 8):
            assert f"| {mode} | {concurrency} |" in table
    assert "AsrReference.transcribe" in table


@pytest.mark.server
def test_quick_benchmark_json_has_positive_measurements(quick_run: tuple[str, str, dict]) -> None:
    _, _, results = quick_run
    assert results["quick"] is True
    assert results["machine"]["cores"] >= 1
    builds = {(r["model"], r["backend"], r["precision"]): r for r in results["build"]}
    assert set(builds) == {(m, b, p) for m in MODELS for b, p in FORMATS}
    for row in builds.values():
        assert row["status"] == "ok"
        for key in ("process_wall_s", "build_total_s", "acoustic_export_s", "acoustic_parity_s"):
            assert _positive(row[key]), (key, row)

    inference = {(r["model"], r["batch"]): r for r in results["inference"]}
    assert set(inference) == {(m, b) for m in MODELS for b in (1, 8)}
    for row in inference.values():
        for key in ("eager_s", "onnxruntime_s", "eager_over_onnxruntime"):
            assert _positive(row[key]), (key, row)
        assert _positive(row["torchscript_s"]) and _positive(row["eager_over_torchscript"])

    serving = results["serving"]
    load = {(r["dynamic_batching"], r["concurrency"]): r for r in serving["load"]}
    assert set(load) == {(m, c) for m in ("default", "disabled") for c in (1, 4, 8)}
    for row in load.values():
        assert row["requests"] > 0
        for key in ("throughput_audio_s_per_s", "latency_p50_s", "latency_p99_s"):
            assert _positive(row[key]), (key, row)
        assert row["latency_p50_s"] <= row["latency_p99_s"]
        assert row["acoustic_mean_batch"] >= 1
    # Without dynamic batching the acoustic model only ever runs one request at a time.
    assert all(load["disabled", c]["acoustic_mean_batch"] == 1 for c in (1, 4, 8))
    ratios = serving["ratios"]
    assert set(ratios["batching_on_over_off_throughput"]) == {"1", "4", "8"}
    assert all(_positive(v) for v in ratios["batching_on_over_off_throughput"].values())
    overhead = ratios["served_over_in_process_time"]
    assert set(overhead) == {"reference", "onnxruntime"}
    assert all(_positive(v) for v in overhead.values())
    for base in serving["in_process"].values():
        assert _positive(base["throughput_audio_s_per_s"])
