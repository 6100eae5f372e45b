"""Benchmark of speech synthesis with the installed Piper voice (``pipeline=tts_piper``).

Measured together, in the same run as the other parts:
  1. the cold build in a fresh process (the voice is checked and copied, not exported);
  2. speed in audio seconds per wall second (> 1: faster than real time) on a few sentences,
     served through the real Triton server at several concurrencies (closed loop, one HTTP
     client per thread) and in-process (InProcessRepository: the same repository's models
     without a server, one text at a time);
  3. the peer users would run instead: piper-tts's own synthesis (PiperVoice) of the same
     voice on the same texts, in this process, one text at a time.
A part that fails is reported as skipped with its reason; the benchmark goes on.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelrepo_gen.bench.build import build_process, repository_mib
from modelrepo_gen.bench.whisper import _guard, _reason

PIPELINE = ["pipeline=tts_piper"]
MODEL = "tts_piper"
TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call the doctor before noon tomorrow, and bring the papers with you.",
    "She sells fresh bread at the market every morning. It is gone by ten.",
    "Turn left at the next corner and keep going until you see the river.",
)


@dataclass(frozen=True)
class SpeechSettings:
    texts: int = 4  # the first N of TEXTS
    concurrencies: tuple[int, ...] = (1, 4)
    passes: int = 3  # requests per concurrency: every text this many times
    build_timeout_s: float = 300

    @classmethod
    def quick(cls) -> SpeechSettings:
        return cls(texts=2, concurrencies=(1, 2), passes=1)


def timed_speech_build(repository: Path, timeout_s: float) -> dict:
    built = build_process(PIPELINE, repository, timeout_s)
    if built is None:
        return {"status": f"skipped: took longer than {timeout_s:.0f} s"}
    wall, result = built
    return {
        "status": "ok",
        "process_wall_s": wall,
        "build_total_s": result["seconds"]["total"],
        "artifact_mib": repository_mib(repository),
    }


def in_process_speed(repository: Path, texts: list[str], passes: int, model: str = MODEL) -> dict:
    """The repository run in this process (InProcessRepository: its own models, the same
    request code, no server) on the texts, one at a time (after one warm-up text)."""
    from modelrepo_gen.clients.in_process_repository import InProcessRepository
    from modelrepo_gen.clients.tts_client import infer_speech

    with InProcessRepository(repository) as models:
        config = models.get_model_config(model)

        def speak(text: str):  # -> tts_client.Speech
            return infer_speech(models, "in_process", model, config, text)

        speak(texts[0])
        started = time.perf_counter()
        spoken = [speak(t) for t in texts * passes]
        wall = time.perf_counter() - started
    audio_s = sum(speech.seconds for speech in spoken)
    return {"requests": len(texts) * passes, "audio_s": audio_s, "wall_s": wall,
            "speed": audio_s / wall}  # fmt: skip


def piper_tts_speed(texts: list[str], passes: int) -> dict:
    """piper-tts's own runtime on the pipeline's default voice (the installed one): what a
    user would run instead of serving it, one text at a time (after one warm-up text)."""
    from piper import PiperVoice

    from modelrepo_gen.components.piper_voice_source import voice_file

    voice = PiperVoice.load(voice_file(None))

    def speak(text: str) -> float:  # seconds of audio
        chunks = list(voice.synthesize(text))
        return sum(chunk.audio_float_array.size / chunk.sample_rate for chunk in chunks)

    speak(texts[0])
    started = time.perf_counter()
    seconds = [speak(t) for t in texts * passes]
    wall = time.perf_counter() - started
    return {"requests": len(seconds), "audio_s": sum(seconds), "wall_s": wall,
            "speed": sum(seconds) / wall}  # fmt: skip


def served_speed(
    url: str, texts: list[str], requests: int, concurrency: int, model: str = MODEL
) -> dict:
    """`requests` texts (cycled) through the ensemble `model`, `concurrency` threads each with
    its own HTTP client (the model's config is read once, before the clock starts)."""
    import tritonclient.http as httpclient

    from modelrepo_gen.clients.tts_client import check_tts_model, infer_speech

    config = check_tts_model(url, "http", model)

    lock = threading.Lock()
    queue = list(range(requests))
    latencies: list[float] = []
    seconds: list[float] = []
    errors: list[BaseException] = []

    def work() -> None:
        client = httpclient.InferenceServerClient(url, network_timeout=300.0)
        try:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    text = texts[queue.pop() % len(texts)]
                started = time.perf_counter()
                speech = infer_speech(client, "http", model, config, text)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    seconds.append(speech.seconds)
        except BaseException as error:  # reported once the threads are done
            with lock:
                errors.append(error)
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {
        "concurrency": concurrency,
        "requests": requests,
        "audio_s": sum(seconds),
        "wall_s": wall,
        "speed": sum(seconds) / wall,
        "latency_p50_s": statistics.median(latencies),
    }


def speech_part(settings: SpeechSettings, work: Path, log: Callable[[str], None] = print) -> dict:
    """Build and speed of tts_piper; failures become `skipped`."""
    texts = list(TEXTS[: settings.texts])
    result: dict = {
        "texts": texts,
        "requests_per_text": settings.passes,
        "server_version": "unknown",
    }
    repository = work / "tts_piper"
    log("build tts_piper")
    try:
        result["build"] = timed_speech_build(repository, settings.build_timeout_s)
    except Exception as error:  # e.g. the voice not installed: reported
        result["build"] = {"status": _reason(error)}
    speed: dict = {"status": result["build"]["status"]}
    result["speed"] = speed
    if speed["status"] != "ok":
        return result
    log("tts_piper: in-process speed")
    _guard(
        speed,
        lambda: speed.update(in_process=in_process_speed(repository, texts, settings.passes)),
    )

    def served() -> None:
        import tritonclient.http as httpclient

        from modelrepo_gen.serve.server import TritonServer

        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
            client = httpclient.InferenceServerClient(server.http_url)
            try:
                result["server_version"] = client.get_server_metadata().get("version")
            finally:
                client.close()
            for text in texts:  # warm-up, not timed
                served_speed(server.http_url, [text], 1, 1)
            speed["served"] = []
            for concurrency in settings.concurrencies:
                row = served_speed(
                    server.http_url, texts, len(texts) * settings.passes, concurrency
                )
                log(f"  concurrency {concurrency}: {row['speed']:.2f} audio s per s")
                speed["served"].append(row)
        single = speed["served"][0]["speed"]
        speed["served_over_in_process"] = single / speed["in_process"]["speed"]

    log("tts_piper: served speed")
    _guard(speed, served)
    if "served" in speed:
        log("tts_piper: piper-tts's own synthesis")
        _guard(speed, lambda: speed.update(piper_tts=piper_tts_speed(texts, settings.passes)))
    if "piper_tts" in speed:
        speed["served_over_piper_tts"] = speed["served"][0]["speed"] / speed["piper_tts"]["speed"]
    return result
