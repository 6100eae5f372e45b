"""The CTranslate2 runtime of asr_whisper (`whisper_runtime=ctranslate2`) in the benchmark.

Per variant, a precision (fp32, int8) and a beam size (model.beam_size: 1 greedy, or 5 as
faster-whisper's default), its repository is built, served and loaded exactly as the
onnxruntime one (bench/whisper.py's served_rtf), and set beside faster-whisper on the same
weights, compute type and beams, measured in the same run: the served speed at concurrency 1
over faster-whisper's, and the throughput at the highest concurrency over concurrency 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from modelrepo_gen.bench.build import build_process
from modelrepo_gen.serve.server import TritonServer

# precision= of a build -> faster-whisper's compute type on the same weights
PRECISIONS = {"fp32": "float32", "int8": "int8"}


def variant_name(precision: str, beam_size: int) -> str:
    return precision if beam_size == 1 else f"{precision}, beam {beam_size}"


def ctranslate2_rows(
    overrides: Sequence[str],
    variants: Sequence[tuple[str, int]],
    measure: Callable[[str, Path], list[dict]],
    build_timeout_s: float,
    work: Path,
    log: Callable[[str], None],
) -> dict[str, dict]:
    """variant name -> {"served": rows of `measure(url, repository)` (one per concurrency),
    "transcripts": at the lowest concurrency, "precision", "beam_size"}."""
    rows = {}
    for precision, beam_size in variants:
        name = variant_name(precision, beam_size)
        repository = work / f"whisper_ctranslate2_{precision}_beam{beam_size}"
        log(f"Whisper, CTranslate2 runtime, {name}: build and serve")
        runtime = [
            *overrides,
            "whisper_runtime=ctranslate2",
            f"precision={precision}",
            f"model.beam_size={beam_size}",
        ]
        if build_process(runtime, repository, build_timeout_s) is None:
            raise RuntimeError(f"the {precision} build took over {build_timeout_s:.0f} s")
        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
            served = measure(server.http_url, repository)
        for row in served:
            log(f"  concurrency {row['concurrency']}: RTF {row['rtf']:.3f}")
        lowest = min(served, key=lambda row: row["concurrency"])
        rows[name] = {
            "served": served,
            "transcripts": lowest["transcripts"],
            "precision": precision,
            "beam_size": beam_size,
        }
    return rows


def concurrency_scaling(served: list[dict]) -> float:
    """Throughput at the highest concurrency of served_rtf's rows over the lowest's."""
    by_concurrency = {row["concurrency"]: row for row in served}
    return by_concurrency[min(by_concurrency)]["rtf"] / by_concurrency[max(by_concurrency)]["rtf"]


def peer_name(row: dict) -> str:
    """The faster-whisper row a variant is set beside: its compute type and beams."""
    return variant_name(PRECISIONS[row["precision"]], row["beam_size"])


def runtime_ratios(rows: dict[str, dict], peer_rows: dict[str, dict] | None) -> dict[str, dict]:
    """Per variant: throughput at the highest concurrency over the lowest, and (where the
    peer ran) served speed at the lowest concurrency over faster-whisper's and equal texts."""
    ratios = {}
    for name, row in rows.items():
        low = min(row["served"], key=lambda r: r["concurrency"])
        entry = {"highest_over_lowest_concurrency": concurrency_scaling(row["served"])}
        peer = (peer_rows or {}).get(peer_name(row))
        if peer:
            entry["served_over_faster_whisper"] = peer["rtf"] / low["rtf"]
            equal = sum(a == b for a, b in zip(row["transcripts"], peer["transcripts"]))
            entry["equal_faster_whisper"] = f"{equal}/{len(row['transcripts'])}"
        ratios[name] = entry
    return ratios
