"""One cached step of the Whisper decoder, timed three ways: PyTorch (the step module the
repository exports), onnxruntime on the repository's model.onnx, and a direct request to the
served decoder model.

The step: batch 1, one new token, a self-attention cache of `cache_tokens` earlier tokens and
the 30 s window's cross-attention cache (the shapes the generation model sends mid-utterance).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelrepo_gen.bench.build import BenchmarkError, time_calls
from modelrepo_gen.core.build_plan import BuildPlan, TensorSpec

DTYPES = {"TYPE_FP32": (np.float32, "FP32"), "TYPE_INT64": (np.int64, "INT64")}
TOKEN = 440  # any ordinary text token: the step's cost does not depend on which


@dataclass(frozen=True)
class StepSettings:
    cache_tokens: int = 20  # earlier tokens in the self-attention cache
    warmup: int = 3
    repeats: int = 30  # timed runs per path; the median is reported
    seed: int = 0


def step_tensors(inputs: tuple[TensorSpec, ...], settings: StepSettings) -> list[np.ndarray]:
    """Batch-1 inputs in the decoder's input order: TOKENS [1, 1], caches of unit scale."""
    generator = np.random.default_rng(settings.seed)
    tensors = []
    for spec in inputs:
        dtype = DTYPES[spec.data_type][0]
        if spec.name == "TOKENS":
            tensors.append(np.full((1, 1), TOKEN, dtype=dtype))
            continue
        dims = [settings.cache_tokens if d == -1 else d for d in spec.dims]
        tensors.append(generator.standard_normal((1, *dims)).astype(dtype))
    return tensors


def step_in_process(
    plan: BuildPlan, repository: Path, settings: StepSettings
) -> tuple[dict, list[np.ndarray], np.ndarray]:
    """PyTorch eager and onnxruntime medians; also the inputs and PyTorch's logits, so the
    served request can be checked to compute the same step."""
    import torch

    from modelrepo_gen.exporters import EXPORTERS

    unit = next(u for u in plan.units if u.role == "decoder")
    export = unit.export
    tensors = step_tensors(export.inputs, settings)
    module = export.make_module().eval()
    torch_inputs = [torch.from_numpy(t) for t in tensors]

    def eager() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return module(*torch_inputs)

    runner = EXPORTERS.get("onnx").load(repository / unit.name / "1" / unit.artifact, export.inputs)
    eager_times = time_calls(eager, settings.warmup, settings.repeats)
    ort_times = time_calls(lambda: runner(tensors), settings.warmup, settings.repeats)
    logits = eager()[0].numpy()
    return (
        {
            "status": "ok",
            "model": unit.name,
            "cache_tokens": settings.cache_tokens,
            "repeats": settings.repeats,
            "eager_s": statistics.median(eager_times),
            "onnxruntime_s": statistics.median(ort_times),
            "eager_runs_s": eager_times,
            "onnxruntime_runs_s": ort_times,
        },
        tensors,
        logits,
    )


def _server_seconds(client, model_name: str) -> tuple[int, float]:
    """(requests, seconds of compute input + infer + output) the server counted for a model."""
    stats = client.get_inference_statistics(model_name)["model_stats"]
    requests, ns = 0, 0
    for entry in stats:
        inference = entry.get("inference_stats", {})
        requests += int(inference.get("success", {}).get("count", 0))
        for phase in ("compute_input", "compute_infer", "compute_output"):
            ns += int(inference.get(phase, {}).get("ns", 0))
    return requests, ns / 1e9


def step_served(url: str, model_name: str, step_inputs: dict, settings: StepSettings) -> dict:
    """Median round trip of a direct HTTP request to the served decoder, and the mean compute
    time the server counted for those requests (the round trip minus transfer and queueing)."""
    import tritonclient.http as httpclient

    tensors, expected = step_inputs.get("tensors"), step_inputs.get("logits")
    if tensors is None:
        raise BenchmarkError("the in-process step did not run")
    client = httpclient.InferenceServerClient(url, connection_timeout=60, network_timeout=600)
    try:
        config = client.get_model_config(model_name)
        names = [spec["name"] for spec in config["input"]]
        if names != ["TOKENS", "PAST_KV", "CROSS_KV"]:
            raise BenchmarkError(f"{model_name} takes {names}, not TOKENS, PAST_KV, CROSS_KV")
        inputs = []
        for name, array in zip(names, tensors):
            kind = "INT64" if array.dtype == np.int64 else "FP32"
            inputs.append(httpclient.InferInput(name, list(array.shape), kind))
            inputs[-1].set_data_from_numpy(array, binary_data=True)
        outputs = [
            httpclient.InferRequestedOutput(name, binary_data=True)
            for name in ("LOGITS", "PRESENT_KV")
        ]

        def call():
            return client.infer(model_name, inputs, outputs=outputs)

        answer = call()
        logits, present = answer.as_numpy("LOGITS"), answer.as_numpy("PRESENT_KV")
        if present.shape[4] != settings.cache_tokens + 1:
            raise BenchmarkError(f"{model_name} grew the cache to {present.shape}")
        difference = float(np.abs(logits - expected).max() / np.abs(expected).max())
        if difference > 1e-3:  # the served step must be the step timed in-process
            raise BenchmarkError(f"{model_name} logits differ from PyTorch's by {difference:.2e}")
        for _ in range(settings.warmup - 1):  # the checked call above was the first
            call()
        before = _server_seconds(client, model_name)  # counts only the timed requests
        times = time_calls(call, 0, settings.repeats)
        after = _server_seconds(client, model_name)
    finally:
        client.close()
    counted = after[0] - before[0]
    return {
        "served_s": statistics.median(times),
        "served_runs_s": times,
        "served_server_compute_s": (after[1] - before[1]) / counted if counted else 0.0,
        "served_logits_relative_difference": difference,
        "request_mib": sum(t.nbytes for t in tensors) / 2**20,
    }
