"""Benchmark of the NLP pipelines (text classification and question answering) on the real
all-MiniLM-L6-v2 encoder: builds, the network in PyTorch eager vs onnxruntime, and the served
ensemble under closed-loop load (concurrency 1 and 8, dynamic batching on and off) against the
same repository run in-process (InProcessRepository: its own models, without a server).

The task heads are seeded (no trained head installs offline): answers are meaningless, and
times do not depend on the weights' values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelrepo_gen.bench.build import BenchmarkError, build_process, repository_mib, time_calls
from modelrepo_gen.bench.serving import (
    batching_model,
    closed_loop,
    latency_row,
    model_counts,
    repository_models,
    server_version,
)
from modelrepo_gen.repository.manifest import MANIFEST

NETWORK_INPUTS = ("INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS")

# Short texts (10-20 tokens), as a classifier of messages or reviews receives them.
SHORT_TEXTS = [
    "The delivery was quick and the package arrived in perfect condition.",
    "I waited two hours on the phone and nobody could help me.",
    "Great value for the price, I would buy it again.",
    "The app crashes every time I open the settings page.",
    "Our flight was delayed but the crew kept everyone informed.",
    "This café in Zürich serves the best croissants I have had.",
    "Battery life is shorter than advertised and it charges slowly.",
    "Thanks for the quick reply, the issue is solved now.",
    "The hotel room was small, noisy and not very clean.",
    "Lovely staff, calm atmosphere and a beautiful view of the lake.",
    "The update removed the one feature I used every day.",
    "Fast shipping, easy setup, works exactly as described.",
]
CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. The basin "
    "encompasses seven million square kilometres, of which five and a half million square "
    "kilometres are covered by the rainforest. The region includes territory belonging to nine "
    "nations. The majority of the forest is contained within Brazil, with 60% of the "
    "rainforest, followed by Peru with 13%, Colombia with 10%, and with minor amounts in "
    "Venezuela, Ecuador, Bolivia, Guyana, Suriname and French Guiana. The rainforest likely "
    "formed during the Eocene era, following a reduction of tropical temperatures when the "
    "Atlantic Ocean had widened enough to provide a warm, moist climate to the Amazon basin."
)
QUESTIONS = [
    "Which country holds most of the rainforest?",
    "How large is the basin?",
    "When did the rainforest form?",
    "How many nations have territory in the region?",
    "What share of the forest lies in Peru?",
    "Which ocean widened?",
]


@dataclass(frozen=True)
class NlpSettings:
    pipelines: tuple[str, ...] = ("nlp_text_classification", "nlp_qa")
    concurrencies: tuple[int, ...] = (1, 8)
    # dynamic_batching options: the default first, without batching last; `throughput` waits
    # up to 10 ms to fill batches of 8.
    modes: tuple[str, ...] = ("default", "throughput", "disabled")
    requests: dict = field(default_factory=lambda: {"nlp_text_classification": 240, "nlp_qa": 48})
    network_repeats: int = 20
    int8: bool = True  # also build precision=int8 (default batching) and compare it with fp32

    @classmethod
    def quick(cls) -> NlpSettings:
        return cls(
            pipelines=("nlp_text_classification",),
            modes=("default", "disabled"),
            requests={"nlp_text_classification": 24},
            network_repeats=3,
        )


def requests_for(pipeline: str) -> list[dict[str, str]]:
    if pipeline == "nlp_qa":
        return [{"QUESTION": q, "CONTEXT": CONTEXT} for q in QUESTIONS]
    return [{"TEXT": text} for text in SHORT_TEXTS]


def in_process_rate(repository: Path, pipeline: str, items: list[dict], passes: int) -> dict:
    """The served computation without serving: the repository run in this process
    (InProcessRepository: the same models, the same request code), one request at a time;
    with the answers of the first pass."""
    from modelrepo_gen.clients.in_process_repository import InProcessRepository
    from modelrepo_gen.clients.text_client import TextModel, infer_answer

    model = TextModel(str(repository), "in_process", pipeline)
    with InProcessRepository(repository) as models:
        answers = [infer_answer(models, "in_process", model, item) for item in items]  # warm-up
        times = time_calls(
            lambda: [infer_answer(models, "in_process", model, item) for item in items],
            0,
            passes,
        )
    wall = sum(times)
    count = len(items) * passes
    return {
        "requests": count,
        "requests_per_s": count / wall,
        "latency_mean_s": wall / count,
        "answers": answers,
    }


def network_timings(repository: Path, items: list[dict], repeats: int) -> list[dict]:
    """The network alone on the first windows of the texts (cut by the repository's own
    tokenizer model), batch 1 and 8 (padded to the longest): its PyTorch module vs the
    repository's ONNX file in onnxruntime, median seconds per call."""
    import torch
    from omegaconf import OmegaConf

    from modelrepo_gen.clients.in_process_repository import InProcessRepository
    from modelrepo_gen.exporters import EXPORTERS
    from modelrepo_gen.plan.resolver import resolve

    manifest = json.loads((repository / MANIFEST).read_text())
    units = {u.role: u for u in resolve(OmegaConf.create(manifest["config"])).units}
    network, tokenizer = units["network"], units["tokenizer"]
    module = network.export.make_module().eval()
    onnx = EXPORTERS.get("onnx").load(
        repository / network.name / "1" / network.artifact, network.export.inputs
    )
    with InProcessRepository(repository) as models:
        windows = [
            models.run(
                tokenizer.name,
                {k: np.array([[v.encode("utf-8")]], dtype=object) for k, v in item.items()},
            )
            for item in items
        ]

    def eager(arrays: list[np.ndarray]) -> list:
        with torch.inference_mode():
            return module(*[torch.from_numpy(a) for a in arrays])

    rows = []
    for batch in (1, 8):
        chosen = [windows[i % len(windows)] for i in range(batch)]
        # The first window of each text ([texts, windows, tokens]), cut to its own tokens.
        firsts = [
            [w[n][0, :1, : int(w["ATTENTION_MASK"][0, 0].sum())] for n in NETWORK_INPUTS]
            for w in chosen
        ]
        width = max(first[0].shape[1] for first in firsts)
        arrays = [
            np.concatenate([np.pad(f[i], [(0, 0), (0, width - f[i].shape[1])]) for f in firsts])
            for i in range(len(NETWORK_INPUTS))
        ]
        timed = {}
        for name, runner in (("eager", eager), ("onnxruntime", onnx)):
            timed[name] = float(np.median(time_calls(lambda r=runner, a=arrays: r(a), 2, repeats)))
        rows.append(
            {
                "batch": batch,
                "tokens": width,
                "eager_s": timed["eager"],
                "onnxruntime_s": timed["onnxruntime"],
                "eager_over_onnxruntime": timed["eager"] / timed["onnxruntime"],
            }
        )
    return rows


def served_rows(
    repository: Path,
    pipeline: str,
    mode: str,
    items: list[dict],
    settings: NlpSettings,
    log: Callable[[str], None],
) -> tuple[list[dict], list[dict]]:
    """Closed-loop load at each concurrency; rows, and the answers of the first pass."""
    from modelrepo_gen.clients.text_client import TextModel, infer_answer
    from modelrepo_gen.serve.server import TritonServer

    # The model that batches requests: it sends the windows of all it holds to the network in
    # one call (which runs inside it on the CPU target, out of the server's statistics).
    batcher = batching_model(repository_models(repository), "postprocessing")
    rows = []
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        model = TextModel(server.http_url, "http", pipeline)
        version = server_version(server.http_url)

        def send(client, index: int) -> dict:
            return infer_answer(client, "http", model, items[index % len(items)])

        _, answers = closed_loop(server.http_url, len(items), 1, send)  # warm-up
        closed_loop(server.http_url, 16, 8, send)
        for concurrency in settings.concurrencies:
            before = model_counts(server.http_url, batcher)
            cpu = time.process_time()
            spans, _ = closed_loop(server.http_url, settings.requests[pipeline], concurrency, send)
            cpu = time.process_time() - cpu  # the client threads: they share the cores
            after = model_counts(server.http_url, batcher)
            row = latency_row(spans, concurrency)
            row["client_cpu_ms_per_request"] = 1000 * cpu / len(spans)
            executions = after[1] - before[1]
            row["mean_batch"] = (after[0] - before[0]) / executions if executions else 0
            row["dynamic_batching"] = mode
            row["server_version"] = version
            rows.append(row)
            log(
                f"  {pipeline} dynamic_batching={mode} concurrency {concurrency}: "
                f"{row['requests_per_s']:.1f} req/s, p50 {row['latency_p50_s'] * 1000:.1f} ms, "
                f"p99 {row['latency_p99_s'] * 1000:.1f} ms, batch "
                f"{row['mean_batch']:.2f}"
            )
    return rows, answers


def pipeline_part(pipeline: str, settings: NlpSettings, work: Path, log) -> dict:
    items = requests_for(pipeline)
    result: dict = {"pipeline": pipeline, "builds": [], "served": []}
    repositories = {}
    for mode in settings.modes:
        log(f"build {pipeline} dynamic_batching={mode}")
        path = work / f"{pipeline}-{mode}"
        wall, report = build_process([f"pipeline={pipeline}", f"dynamic_batching={mode}"], path)
        network = report["units"]["network"]
        result["builds"].append(
            {
                "dynamic_batching": mode,
                "process_wall_s": wall,
                "network_export_s": report["seconds"][f"export {network}"],
                "network_parity_s": report["seconds"][f"parity {network}"],
                "repository_mib": repository_mib(path),
            }
        )
        repositories[mode] = path
    default = repositories[settings.modes[0]]
    log(f"{pipeline}: network alone, PyTorch eager vs onnxruntime")
    result["network"] = network_timings(default, items, settings.network_repeats)
    log(f"{pipeline}: in-process pipeline")
    passes = max(1, settings.requests[pipeline] // len(items))
    result["in_process"] = in_process_rate(default, pipeline, items, passes)
    expected = result["in_process"].pop("answers")
    for mode in settings.modes:
        rows, answers = served_rows(repositories[mode], pipeline, mode, items, settings, log)
        result["served"] += rows
        if mode == settings.modes[0]:
            result["served_answers_equal_in_process"] = sum(
                _same(a, b) for a, b in zip(answers, expected)
            )
            result["answers"] = len(items)
    result["ratios"] = _ratios(result, settings)
    if settings.int8:
        try:
            result["int8"] = int8_part(pipeline, settings, work, log, result, expected)
        except BenchmarkError as error:  # reported in the table; the other rows stand
            result["int8"] = {"status": f"skipped: {str(error).strip().splitlines()[-1][:300]}"}
    return result


def int8_part(
    pipeline: str, settings: NlpSettings, work: Path, log, fp32: dict, fp32_answers: list
) -> dict:
    """precision=int8 beside the fp32 rows just measured: the network alone in onnxruntime,
    the served pipeline (default batching), and its labels against fp32's on the same texts."""
    items = requests_for(pipeline)
    log(f"build {pipeline} precision=int8")
    path = work / f"{pipeline}-int8"
    wall, report = build_process([f"pipeline={pipeline}", "precision=int8"], path)
    network = report["units"]["network"]
    part: dict = {
        "status": "ok",
        "build": {
            "process_wall_s": wall,
            "network_export_s": report["seconds"][f"export {network}"],
            "network_parity_s": report["seconds"][f"parity {network}"],
            "repository_mib": repository_mib(path),
        },
        "network": network_timings(path, items, settings.network_repeats),
    }
    rows, answers = served_rows(path, pipeline, settings.modes[0], items, settings, log)
    part["served"] = rows
    part["labels_equal_fp32"] = sum(_same_labels(a, b) for a, b in zip(answers, fp32_answers))
    part["answers"] = len(items)
    fp32_served = {
        r["concurrency"]: r for r in fp32["served"] if r["dynamic_batching"] == settings.modes[0]
    }
    part["ratios"] = {
        "int8_over_fp32_served_throughput": {
            str(r["concurrency"]): r["requests_per_s"]
            / fp32_served[r["concurrency"]]["requests_per_s"]
            for r in rows
        },
        "int8_over_fp32_network_speed": {
            str(row["batch"]): base["onnxruntime_s"] / row["onnxruntime_s"]
            for row, base in zip(part["network"], fp32["network"])
        },
    }
    return part


def _same_labels(int8: dict, fp32: dict) -> bool:
    """The same answer but for scores: labels, answer texts and spans."""
    return all(
        int8[key] == value for key, value in fp32.items() if not isinstance(value, (float, dict))
    )


def _same(served: dict, local: dict) -> bool:
    """Equal answers: the same labels and texts, scores within 1e-4."""
    for key, value in local.items():
        if isinstance(value, float):
            if abs(served[key] - value) > 1e-4:
                return False
        elif isinstance(value, dict):
            if any(abs(served[key][k] - v) > 1e-4 for k, v in value.items()):
                return False
        elif served[key] != value:
            return False
    return True


def _ratios(result: dict, settings: NlpSettings) -> dict:
    by_key = {(r["dynamic_batching"], r["concurrency"]): r for r in result["served"]}
    on, off = settings.modes[0], settings.modes[-1]
    local = result["in_process"]["requests_per_s"]
    return {
        "batching_on_over_off": {
            str(c): by_key[on, c]["requests_per_s"] / by_key[off, c]["requests_per_s"]
            for c in settings.concurrencies
        },
        "other_batching_over_off": {
            f"{mode}, concurrency {c}": by_key[mode, c]["requests_per_s"]
            / by_key[off, c]["requests_per_s"]
            for mode in settings.modes[1:-1]
            for c in settings.concurrencies
        },
        "served_over_in_process": {
            str(c): by_key[on, c]["requests_per_s"] / local for c in settings.concurrencies
        },
    }


def nlp_part(settings: NlpSettings, work: Path, log) -> dict:
    parts = [pipeline_part(p, settings, work, log) for p in settings.pipelines]
    return {
        "pipelines": parts,
        "concurrencies": list(settings.concurrencies),
        "server_version": parts[0]["served"][0]["server_version"],
    }
