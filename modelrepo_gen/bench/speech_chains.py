"""Benchmark of speech synthesis through an acoustic model and a vocoder
(``pipeline=tts_tacotron2_waveglow`` and ``pipeline=tts_fastpitch_hifigan``, seeded weights;
``pipeline=tts_nemo``, a FastPitch + HiFi-GAN .nemo pair of random weights: bench/nemo_tts_pair.py).

Measured for each pipeline, in the same run as the other parts:
  1. the cold build in a fresh process, with the export and parity time of each network;
  2. speed in audio seconds per wall second (> 1: faster than real time), served through the
     real Triton server (closed loop, one HTTP client per thread) and in-process
     (InProcessRepository: the same repository's models without a server, one text at a time).
A seeded Tacotron 2's stop gate fires at the first step (its stop probability sits near 0.5),
so the benchmark raises gate_threshold above it: the gate never fires and every sentence runs
to max_decoder_steps, a fixed, realistic amount of audio (400 frames: 4.6 s).
A part that fails is reported as skipped with its reason; the benchmark goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.bench.build import build_process, repository_mib
from modelrepo_gen.bench.nemo_tts_pair import nemo_tts_pair
from modelrepo_gen.bench.speech import in_process_speed, served_speed
from modelrepo_gen.bench.whisper import _guard, _reason

TACOTRON2_FIXED_LENGTH = [
    "pipeline.models.acoustic.gate_threshold=0.9",
    "pipeline.models.acoustic.max_decoder_steps=400",
]
NEMO_PAIR = "tts_nemo"  # its overrides name the .nemo pair made for the run
FULL = {
    "tts_tacotron2_waveglow": TACOTRON2_FIXED_LENGTH,
    "tts_fastpitch_hifigan": [],
    NEMO_PAIR: [],
}
QUICK = {
    "tts_tacotron2_waveglow": [
        "model@pipeline.models.acoustic=tacotron2_mini",
        "model@pipeline.models.vocoder=waveglow_mini",
        "pipeline.models.acoustic.gate_threshold=0.9",
    ],
    "tts_fastpitch_hifigan": [
        "model@pipeline.models.acoustic=fastpitch_mini",
        "model@pipeline.models.vocoder=hifigan_mini",
    ],
    NEMO_PAIR: [],
}
TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call the doctor before noon tomorrow.",
)
ROLES = ("acoustic", "vocoder")


@dataclass(frozen=True)
class SpeechChainSettings:
    pipelines: tuple[tuple[str, tuple[str, ...]], ...]  # (pipeline, its overrides)
    texts: int = 2  # the first N of TEXTS
    concurrencies: tuple[int, ...] = (1,)
    passes: int = 1  # requests per concurrency: every text this many times
    build_timeout_s: float = 600
    small_nemo_pair: bool = False  # tts_nemo: the test fixtures, not a full-size pair

    @classmethod
    def full(cls) -> SpeechChainSettings:
        return cls(tuple((name, tuple(o)) for name, o in FULL.items()))

    @classmethod
    def quick(cls) -> SpeechChainSettings:
        pipelines = tuple((name, tuple(o)) for name, o in QUICK.items())
        return cls(pipelines, texts=1, small_nemo_pair=True)


def timed_chain_build(overrides: list[str], repository: Path, timeout_s: float) -> dict:
    built = build_process(overrides, repository, timeout_s)
    if built is None:
        return {"status": f"skipped: took longer than {timeout_s:.0f} s"}
    wall, result = built
    seconds, units = result["seconds"], result["units"]
    row = {
        "status": "ok",
        "process_wall_s": wall,
        "build_total_s": seconds["total"],
        "artifact_mib": repository_mib(repository),
    }
    for role in ROLES:
        row[f"{role}_export_s"] = seconds[f"export {units[role]}"]
        row[f"{role}_parity_s"] = seconds[f"parity {units[role]}"]
    return row


def _one_pipeline(
    name: str, overrides: list[str], settings: SpeechChainSettings, work: Path, log: Callable
) -> dict:
    texts = list(TEXTS[: settings.texts])
    repository = work / name
    result: dict = {"pipeline": name, "overrides": overrides, "texts": texts}
    log(f"build {name}")
    try:
        if name == NEMO_PAIR:
            files, result["made_by"] = nemo_tts_pair(work, settings.small_nemo_pair, log)
            shown = [f"{key}={Path(path).name}" for key, path in (o.split("=", 1) for o in files)]
            result["overrides"] = [*shown, *overrides]  # the table names the files only
            overrides = [*files, *overrides]
        result["build"] = timed_chain_build(
            [f"pipeline={name}", *overrides], repository, settings.build_timeout_s
        )
    except Exception as error:  # reported, the benchmark goes on
        result["build"] = {"status": _reason(error)}
    speed: dict = {"status": result["build"]["status"]}
    result["speed"] = speed
    if speed["status"] != "ok":
        return result
    log(f"{name}: in-process speed")
    _guard(
        speed,
        lambda: speed.update(in_process=in_process_speed(repository, texts, settings.passes, name)),
    )

    def served() -> None:
        from modelrepo_gen.serve.server import TritonServer

        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
            served_speed(server.http_url, texts[:1], 1, 1, name)  # warm-up, not timed
            speed["served"] = []
            for concurrency in settings.concurrencies:
                row = served_speed(
                    server.http_url, texts, len(texts) * settings.passes, concurrency, name
                )
                log(f"  concurrency {concurrency}: {row['speed']:.3f} audio s per s")
                speed["served"].append(row)
        speed["served_over_in_process"] = speed["served"][0]["speed"] / speed["in_process"]["speed"]

    log(f"{name}: served speed")
    _guard(speed, served)
    return result


def speech_chains_part(
    settings: SpeechChainSettings, work: Path, log: Callable[[str], None] = print
) -> list[dict]:
    """Build and speed of each acoustic + vocoder pipeline; failures become `skipped`."""
    return [
        _one_pipeline(name, list(overrides), settings, work, log)
        for name, overrides in settings.pipelines
    ]
