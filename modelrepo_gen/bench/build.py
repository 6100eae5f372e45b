"""Benchmark parts that need no server: repository builds and acoustic-model inference.

Every build runs in a fresh Python process (``python -m modelrepo_gen.bench.build``), so
each one is cold (imports included in its process time), exports start from a fresh module
instance, and the 1.3 GB Jasper copies are freed when the process ends.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.core.resources import CHECKOUT, project_folder

ROOT = CHECKOUT  # the source checkout, for the .nemo fixtures under tests/
CONF_DIR = project_folder("conf")
RESULT_MARKER = "BENCHMARK_BUILD_RESULT "
# The formats measured for every model: the default repository first (its build is the cold one).
BUILD_VARIANTS = (("onnx", "fp32"), ("torchscript", "fp32"), ("onnx", "fp16"))


class BenchmarkError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class ModelChoice:
    pipeline: str  # conf/pipeline option
    model: str  # conf/model option
    label: str  # shown in the tables

    def overrides(self) -> list[str]:
        return [f"pipeline={self.pipeline}", f"model={self.model}"]


FULL_MODELS = (
    ModelChoice("asr_quartznet", "quartznet_15x5", "QuartzNet 15x5"),
    ModelChoice("asr_jasper", "jasper_10x5", "Jasper 10x5"),
)
QUICK_MODELS = (
    ModelChoice("asr_quartznet", "quartznet_mini", "QuartzNet mini"),
    ModelChoice("asr_jasper", "jasper_mini", "Jasper mini"),
)


def compose_config(overrides: Sequence[str]):
    """The composed config, exactly as ``python -m modelrepo_gen OVERRIDES`` builds it."""
    from hydra import compose, initialize_config_dir

    from modelrepo_gen.config.schema import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# -- builds ---------------------------------------------------------------------------------
def build_process(
    overrides: Sequence[str], repository: Path, timeout_s: float | None = None
) -> tuple[float, dict] | None:
    """Build one repository in a fresh process: (process wall seconds, build_repository's
    {"seconds": step times, "units": role -> model name}); None if it took over ``timeout_s``."""
    command = [sys.executable, "-m", "modelrepo_gen.bench.build", str(repository), *overrides]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        for leftover in repository.parent.glob(f".{repository.name}.building-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # the killed build's staging folder
        shutil.rmtree(repository, ignore_errors=True)
        return None
    wall = time.perf_counter() - started
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not results:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BenchmarkError(f"build {' '.join(overrides)} failed:\n{tail}")
    return wall, json.loads(results[-1][len(RESULT_MARKER) :])


def repository_mib(repository: Path) -> float:
    return sum(f.stat().st_size for f in repository.rglob("*") if f.is_file()) / 2**20


def timed_build(
    model: ModelChoice,
    backend: str,
    precision: str,
    repository: Path,
    dynamic_batching: str = "default",
    timeout_s: float | None = None,
    extra: tuple[str, ...] = (),
) -> dict:
    """Build one repository in a fresh process; its wall time and build_repository's steps."""
    overrides = [
        *model.overrides(),
        f"backend={backend}",
        f"precision={precision}",
        f"dynamic_batching={dynamic_batching}",
        *extra,
    ]
    row = {"model": model.label, "backend": backend, "precision": precision}
    built = build_process(overrides, repository, timeout_s)
    if built is None:
        return {**row, "status": f"skipped: took longer than {timeout_s:.0f} s"}
    wall, result = built
    seconds, units = result["seconds"], result["units"]
    return {
        **row,
        "status": "ok",
        "process_wall_s": wall,
        "build_total_s": seconds["total"],
        "acoustic_export_s": seconds[f"export {units['acoustic_model']}"],
        "acoustic_parity_s": seconds[f"parity {units['acoustic_model']}"],
        "features_export_s": seconds[f"export {units['feature_extractor']}"],
        "features_parity_s": seconds[f"parity {units['feature_extractor']}"],
        "artifact_mib": repository_mib(repository),
    }


def _build_worker(argv: Sequence[str]) -> int:
    """Child process: build one repository and print build_repository's step times."""
    parser = argparse.ArgumentParser(prog="python -m modelrepo_gen.bench.build")
    parser.add_argument("repository")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    from modelrepo_gen.assembly.run import build_repository

    report = build_repository(compose_config(args.overrides), Path(args.repository))
    units = {unit.role: unit.name for unit in report.plan.units}
    print(RESULT_MARKER + json.dumps({"seconds": report.seconds, "units": units}), flush=True)
    return 0


# -- acoustic model inference ----------------------------------------------------------------
def time_calls(call: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    time.sleep(0.2)  # let the previous engine's spinning worker threads go idle
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


@dataclass(frozen=True)
class InferenceSettings:
    seconds: float = 7.0  # audio per batch item
    batches: tuple[int, ...] = (1, 8)
    warmup: int = 1
    repeats: int = 3
    torchscript_warmup: int = 2  # the profiling executor optimises on the second call
    torchscript_batches: tuple[int, ...] = (1, 8)  # batches at which TorchScript is timed too


def acoustic_inference(
    model: ModelChoice,
    onnx_repository: Path,
    torchscript_repository: Path | None,
    settings: InferenceSettings,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Median times of the acoustic model on the features of ``settings.seconds`` of audio.

    PyTorch eager (torch.inference_mode, fp32) against onnxruntime running the repository's
    ONNX export (and TorchScript when given). Each engine's runs are timed in one block: ONNX
    Runtime's and OpenMP's spinning threads would otherwise slow the other engine's next call.
    """
    import torch

    from modelrepo_gen.exporters import EXPORTERS
    from modelrepo_gen.plan.resolver import resolve

    plan = resolve(compose_config(model.overrides()))
    unit = next(u for u in plan.units if u.role == "acoustic_model")
    export = unit.export
    module = export.make_module().eval()
    onnx_runner = EXPORTERS.get("onnx").load(
        onnx_repository / unit.name / "1" / "model.onnx", export.inputs
    )
    script_runner = None
    if torchscript_repository is not None:
        script_runner = EXPORTERS.get("torchscript").load(
            torchscript_repository / unit.name / "1" / "model.pt", export.inputs
        )
    rows = []
    for batch in settings.batches:
        inputs = export.make_inputs(batch, settings.seconds, 0)
        arrays = [t.numpy() for t in inputs]

        def eager(inputs=inputs) -> None:
            with torch.inference_mode():
                module(*inputs)

        warmup, repeats = settings.warmup, settings.repeats
        eager_times = time_calls(eager, warmup, repeats)
        onnx_times = time_calls(lambda arrays=arrays: onnx_runner(arrays), warmup, repeats)
        row = {
            "model": model.label,
            "batch": batch,
            "audio_seconds": settings.seconds,
            "feature_frames": int(inputs[0].shape[-1]),
            "repeats": repeats,
            "eager_s": statistics.median(eager_times),
            "onnxruntime_s": statistics.median(onnx_times),
            "eager_runs_s": eager_times,
            "onnxruntime_runs_s": onnx_times,
        }
        row["eager_over_onnxruntime"] = row["eager_s"] / row["onnxruntime_s"]
        if script_runner is not None and batch in settings.torchscript_batches:
            script_times = time_calls(
                lambda arrays=arrays: script_runner(arrays), settings.torchscript_warmup, repeats
            )
            row["torchscript_s"] = statistics.median(script_times)
            row["torchscript_runs_s"] = script_times
            row["eager_over_torchscript"] = row["eager_s"] / row["torchscript_s"]
        elif script_runner is None:
            row["torchscript_note"] = "TorchScript export skipped"
        else:
            row["torchscript_note"] = "not timed at this batch (bounded benchmark time)"
        log(
            f"  {model.label} batch {batch}: eager {row['eager_s']:.3f} s, "
            f"onnxruntime {row['onnxruntime_s']:.3f} s"
            + (f", TorchScript {row['torchscript_s']:.3f} s" if "torchscript_s" in row else "")
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(_build_worker(sys.argv[1:]))
