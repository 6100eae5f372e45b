"""Benchmark of the Whisper pipeline (``pipeline=asr_whisper``, the installed tiny.en).

Measured together, in the same run as the CTC parts:
  1. the cold build in a fresh process, and export + parity time of each network;
  2. real-time factor (processing seconds / audio seconds) on the LibriVox utterances, served
     through the real Triton server and in-process with WhisperReference, and the served WER;
  3. one cached decoder step (bench/whisper_step.py): served, PyTorch, onnxruntime;
  4. the peer users run instead, faster-whisper on the same weights (bench/faster_whisper_peer.py),
     int8 and float32, against the served real-time factor at concurrency 1;
  5. the CTranslate2 runtime (bench/whisper_runtimes.py), fp32 and int8, served the same way
     and set beside faster-whisper's compute type of the same name.
Every part that fails is reported as skipped with its reason; the benchmark goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelrepo_gen.bench.build import (
    BenchmarkError,
    ModelChoice,
    build_process,
    compose_config,
    repository_mib,
)
from modelrepo_gen.bench.faster_whisper_peer import faster_whisper_rtf
from modelrepo_gen.bench.serving import (
    LIBRIVOX,
    SAMPLE_RATE,
    batching_model,
    model_counts,
    repository_models,
    run_load,
)
from modelrepo_gen.bench.whisper_runtimes import (
    PRECISIONS,
    concurrency_scaling,
    ctranslate2_rows,
    peer_name,
    runtime_ratios,
)
from modelrepo_gen.bench.whisper_step import StepSettings, step_in_process, step_served
from modelrepo_gen.clients.librivox import librivox_utterances
from modelrepo_gen.clients.transcribe_manifest import word_errors

WHISPER = ModelChoice("asr_whisper", "whisper_tiny_en", "Whisper tiny.en")
NETWORKS = ("features", "encoder", "decoder")  # roles of the exported networks


@dataclass(frozen=True)
class WhisperSettings:
    utterances: int = 5  # the first N LibriVox utterances (file-name order)
    concurrencies: tuple[int, ...] = (1, 4)
    passes: int = 4  # requests per concurrency: every utterance this many times
    step: StepSettings = StepSettings()
    build_timeout_s: float = 300
    # (precision, beam size) of each CTranslate2 build (bench/whisper_runtimes.py)
    ctranslate2_variants: tuple[tuple[str, int], ...] = (("fp32", 1), ("int8", 1), ("int8", 5))

    @classmethod
    def quick(cls) -> WhisperSettings:
        # Concurrency 2 still runs the batched paths (server batching, transcribe_batch).
        return cls(
            utterances=2,
            concurrencies=(1, 2),
            passes=1,
            step=StepSettings(warmup=1, repeats=5),
            ctranslate2_variants=(("int8", 1),),
        )


def _reason(error: BaseException) -> str:
    """One line for the table: the error's last line, shortened."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return f"skipped: {lines[-1][:200]}"


def _guard(part: dict, measure: Callable[[], None]) -> None:
    """Run one measurement of `part`; a failure marks the part skipped instead of raising."""
    if part["status"] != "ok":
        return
    try:
        measure()
    except Exception as error:  # any failure: reported in the table, the benchmark goes on
        part["status"] = _reason(error)


# -- 1. build --------------------------------------------------------------------------------
def timed_whisper_build(repository: Path, timeout_s: float) -> dict:
    built = build_process(WHISPER.overrides(), repository, timeout_s)
    if built is None:
        return {"status": f"skipped: took longer than {timeout_s:.0f} s"}
    wall, result = built
    seconds, units = result["seconds"], result["units"]
    return {
        "status": "ok",
        "process_wall_s": wall,
        "build_total_s": seconds["total"],
        "networks": {
            role: {
                "model": units[role],
                "export_s": seconds[f"export {units[role]}"],
                "parity_s": seconds[f"parity {units[role]}"],
            }
            for role in NETWORKS
        },
        "artifact_mib": repository_mib(repository),
    }


# -- 2. real-time factor ---------------------------------------------------------------------
def _requests(audios: Sequence[np.ndarray], passes: int) -> list[np.ndarray]:
    return [audios[i % len(audios)] for i in range(len(audios) * passes)]


def in_process_rtf(
    model_path: Path, audios: Sequence[np.ndarray], settings: WhisperSettings
) -> tuple[list[dict], list[str]]:
    """WhisperReference on the requests: one by one at concurrency 1, `transcribe_batch` of
    `concurrency` clips otherwise. Rows per concurrency, and the one-by-one transcripts."""
    from modelrepo_gen.clients.whisper_reference import WhisperReference

    reference = WhisperReference(model_path)
    reference.transcribe(audios[0])  # warm-up
    requests = _requests(audios, settings.passes)
    audio_s = sum(len(a) for a in requests) / SAMPLE_RATE
    rows, texts = [], []
    for concurrency in settings.concurrencies:
        started = time.perf_counter()
        out: list[str] = []
        for first in range(0, len(requests), concurrency):
            out += reference.transcribe_batch(requests[first : first + concurrency])
        wall = time.perf_counter() - started
        rows.append({"concurrency": concurrency, "audio_s": audio_s, "wall_s": wall})
        rows[-1]["rtf"] = wall / audio_s
        if concurrency == 1:
            texts = out[: len(audios)]
    return rows, texts


def served_rtf(
    url: str, repository: Path, audios: Sequence[np.ndarray], settings: WhisperSettings
) -> list[dict]:
    """Closed-loop load on the ensemble (bench/serving.py's client threads) per concurrency."""
    models = repository_models(repository)
    ensemble, generator = models["ensemble"], batching_model(models, "generator")
    # Warm-up, not timed: every utterance once, then one full concurrent wave.
    run_load(url, ensemble, audios, len(audios), 1)
    wave = max(settings.concurrencies)
    run_load(url, ensemble, audios, wave, wave)
    rows = []
    for concurrency in settings.concurrencies:
        before = model_counts(url, generator)
        row = run_load(url, ensemble, audios, len(audios) * settings.passes, concurrency)
        after = model_counts(url, generator)
        executions = after[1] - before[1]
        row["mean_batch"] = (after[0] - before[0]) / executions if executions else 0
        row["rtf"] = row["wall_s"] / row["audio_s"]
        rows.append(row)
    return rows


def _wer(truths: Sequence[str], texts: Sequence[str]) -> float:
    rate = word_errors(truths, texts).rate  # the transcribe client's normalisation
    if rate is None:
        raise BenchmarkError("the reference transcripts are empty")
    return rate


# -- the part --------------------------------------------------------------------------------
def whisper_part(
    names: Sequence[str],
    audios: Sequence[np.ndarray],
    settings: WhisperSettings,
    work: Path,
    log: Callable[[str], None] = print,
) -> dict:
    """Build, real-time factor and decoder step of asr_whisper; failures become `skipped`."""
    names, audios = list(names[: settings.utterances]), list(audios[: settings.utterances])
    result: dict = {
        "model": WHISPER.label,
        "utterances": names,
        "utterance_seconds": [round(len(a) / SAMPLE_RATE, 2) for a in audios],
        "requests_per_utterance": settings.passes,
        "server_version": "unknown",
    }
    repository = work / "whisper"
    log(f"build {WHISPER.label}")
    try:
        result["build"] = timed_whisper_build(repository, settings.build_timeout_s)
    except Exception as error:  # e.g. tiny.en not installed: reported, not fatal
        result["build"] = {"status": _reason(error)}
    speed: dict = {"status": result["build"]["status"]}
    step: dict = {"status": result["build"]["status"]}
    result["speed"], result["step"] = speed, step
    if result["build"]["status"] != "ok":
        return result
    log(f"  {result['build']['process_wall_s']:.1f} s")

    def in_process() -> None:
        from modelrepo_gen.components.whisper_source import WhisperSourceSettings, model_folder

        folder = model_folder(WhisperSourceSettings())
        speed["in_process"], texts = in_process_rtf(folder, audios, settings)
        speed["in_process_transcripts"] = texts

    log(f"{WHISPER.label}: in-process real-time factor")
    _guard(speed, in_process)
    peer: dict = {"status": "ok"}
    result["peer"] = peer

    def faster_whisper() -> None:
        from modelrepo_gen.components.whisper_source import WhisperSourceSettings, model_folder

        peer["rows"] = faster_whisper_rtf(
            model_folder(WhisperSourceSettings()), audios, settings.passes
        )

    log(f"{WHISPER.label}: faster-whisper on the same weights")
    _guard(peer, faster_whisper)
    step_inputs: dict = {}  # the step's tensors and PyTorch's logits, for the served request

    def step_local() -> None:
        from modelrepo_gen.plan.resolver import resolve

        plan = resolve(compose_config(WHISPER.overrides()))
        row, step_inputs["tensors"], step_inputs["logits"] = step_in_process(
            plan, repository, settings.step
        )
        step.update(row)

    log(f"{WHISPER.label}: decoder step in-process")
    _guard(step, step_local)
    try:
        _served(result, repository, names, audios, settings, log, step_inputs)
    except Exception as error:  # the server did not start or died: both parts lose it
        for part in (speed, step):
            if part["status"] == "ok":
                part["status"] = _reason(error)
    runtime: dict = {"status": "ok"}
    result["ctranslate2"] = runtime

    def ctranslate2() -> None:
        from modelrepo_gen.components.whisper_source import WhisperSourceSettings, model_folder

        runtime["rows"] = ctranslate2_rows(
            WHISPER.overrides(),
            settings.ctranslate2_variants,
            lambda url, repository: served_rtf(url, repository, audios, settings),
            settings.build_timeout_s,
            work,
            log,
        )
        peers = dict(peer.get("rows") or {})
        for name, row in runtime["rows"].items():
            if row["beam_size"] > 1 and "rows" in peer:  # faster-whisper with the same beams
                log(f"{WHISPER.label}: faster-whisper, {name}")
                found = faster_whisper_rtf(
                    model_folder(WhisperSourceSettings()),
                    audios,
                    settings.passes,
                    (PRECISIONS[row["precision"]],),
                    row["beam_size"],
                )
                peers[peer_name(row)] = next(iter(found.values()))
        runtime["ratios"] = runtime_ratios(runtime["rows"], peers)

    _guard(runtime, ctranslate2)
    if speed["status"] == "ok":
        speed["highest_over_lowest_concurrency"] = concurrency_scaling(speed["served"])
    return result


def _served(
    result: dict,
    repository: Path,
    names: Sequence[str],
    audios: Sequence[np.ndarray],
    settings: WhisperSettings,
    log: Callable[[str], None],
    step_inputs: dict,
) -> None:
    import tritonclient.http as httpclient

    from modelrepo_gen.serve.server import TritonServer

    speed, step = result["speed"], result["step"]
    with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            result["server_version"] = client.get_server_metadata().get("version", "unknown")
        finally:
            client.close()

        def load() -> None:
            log(f"{WHISPER.label}: served real-time factor")
            speed["served"] = served_rtf(server.http_url, repository, audios, settings)
            for row in speed["served"]:
                log(f"  concurrency {row['concurrency']}: RTF {row['rtf']:.3f}")

        def decoder_step() -> None:
            log(f"{WHISPER.label}: decoder step served")
            decoder = repository_models(repository)["decoder"]
            step.update(step_served(server.http_url, decoder, step_inputs, settings.step))

        _guard(speed, load)
        _guard(step, decoder_step)
    _guard(speed, lambda: speed.update(_speed_summary(speed, names)))
    if result["peer"]["status"] == "ok" and speed["status"] == "ok":
        served = min(speed["served"], key=lambda row: row["concurrency"])["rtf"]
        result["peer"]["served_speed_over_faster_whisper"] = {
            kind: row["rtf"] / served for kind, row in result["peer"]["rows"].items()
        }
        texts = speed["served_transcripts"]
        result["peer"]["served_equal_faster_whisper"] = {
            kind: f"{sum(a == b for a, b in zip(texts, row['transcripts']))}/{len(texts)}"
            for kind, row in result["peer"]["rows"].items()
        }
    _guard(step, lambda: step.update(ratios=_step_ratios(step)))


def _speed_summary(speed: dict, names: Sequence[str]) -> dict:
    truths = {path.name: text for path, text in librivox_utterances(LIBRIVOX)}
    served = {row["concurrency"]: row for row in speed["served"]}
    texts = served[min(served)]["transcripts"]
    expected = [truths[name] for name in names]
    local = speed["in_process_transcripts"]
    return {
        "served_over_in_process_rtf": {
            str(row["concurrency"]): served[row["concurrency"]]["rtf"] / row["rtf"]
            for row in speed["in_process"]
        },
        "served_wer": _wer(expected, texts),
        "in_process_wer": _wer(expected, local),
        "served_equal_in_process": f"{sum(a == b for a, b in zip(texts, local))}/{len(texts)}",
        "served_transcripts": texts,
    }


def _step_ratios(step: dict) -> dict:
    served, eager, ort = step["served_s"], step["eager_s"], step["onnxruntime_s"]
    compute = step["served_server_compute_s"]
    if compute <= 0:
        raise BenchmarkError("the server counted no compute time for the decoder requests")
    return {
        "served_over_eager": served / eager,
        "served_over_onnxruntime": served / ort,
        "eager_over_onnxruntime": eager / ort,
        "served_over_server_compute": served / compute,
        "server_compute_over_onnxruntime": compute / ort,
    }
