"""Client for a served ASR ensemble: audio in, transcripts (and a word error rate) out.

    python -m modelrepo_gen.transcribe --url 127.0.0.1:8000 a.wav b.flac
    python -m modelrepo_gen.transcribe --protocol grpc --concurrency 4 --manifest test.jsonl
    python -m modelrepo_gen.transcribe --segments long.wav   # start, end, text per line
    python -m modelrepo_gen.transcribe --stream speech.wav   # mode=streaming: partials as they come
    python -m modelrepo_gen.transcribe --boosted-words triton,riva --boosted-words-score 20 a.wav

Arguments and local files are checked before the server is asked anything; every user error
ends with one `error:` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelrepo_gen.clients.asr_client import (
    SEGMENTS_OUTPUT,
    TEXT_OUTPUT,
    check_asr_model,
    find_ensemble_model,
    infer_transcript,
    iter_transcripts,
    served_sample_rate,
    transcribe_arrays,
)
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.clients.stream_client import stream_audio, streaming_chunk_seconds
from modelrepo_gen.clients.transcribe_args import (
    DEFAULT_URLS,
    check_args,
    parse_args,
    request_parameters,
)
from modelrepo_gen.clients.transcribe_manifest import (
    ManifestEntry,
    check_audio_files,
    normalize_text,
    read_manifest,
    word_errors,
)
from modelrepo_gen.clients.triton_calls import connect
from modelrepo_gen.core.errors import UserError

__all__ = [
    "infer_transcript",
    "main",
    "normalize_text",
    "read_manifest",
    "transcribe_arrays",
    "word_errors",
]


def _run(args: argparse.Namespace) -> None:
    check_args(args)
    url = args.url or DEFAULT_URLS[args.protocol]
    if args.manifest:
        entries = read_manifest(args.manifest)
    else:
        entries = [ManifestEntry(Path(f), None, None) for f in args.files]
    check_audio_files(entries)
    model_name = args.model or find_ensemble_model(url, args.protocol)
    config = check_asr_model(url, args.protocol, model_name)
    sample_rate = args.sample_rate if args.sample_rate is not None else served_sample_rate(config)
    labels = [str(entry.audio_path) for entry in entries]

    def read(index: int) -> np.ndarray:  # runs in the worker threads: decoding overlaps too
        return load_audio(entries[index].audio_path, sample_rate)

    if args.stream:
        chunk_seconds = streaming_chunk_seconds(config)
        for index, entry in enumerate(entries):
            _print_stream(
                entry.audio_path,
                read(index),
                url,
                args.protocol,
                model_name,
                chunk_seconds,
                sample_rate,
            )
        return

    output = SEGMENTS_OUTPUT if args.segments else TEXT_OUTPUT
    if output not in {t.get("name") for t in config.get("output", [])}:
        raise UserError(f"model '{model_name}' answers no {output} (Whisper pipelines do)")
    answers = iter_transcripts(
        read,
        labels,
        url,
        args.protocol,
        model_name,
        args.concurrency,
        output,
        request_parameters(args),
    )
    if args.segments:
        for entry, answer in zip(entries, answers, strict=True):
            for segment in json.loads(answer):
                start, end, text = segment["start"], segment["end"], segment["text"]
                print(f"{entry.audio_path}\t{start:.2f}\t{end:.2f}\t{text}", flush=True)
        return
    transcripts = answers
    scored = []  # (reference, hypothesis) for the entries that carry a reference text
    for entry, text in zip(entries, transcripts, strict=True):
        print(f"{entry.audio_path}\t{' '.join(text.split())}", flush=True)
        if entry.text is not None:
            scored.append((entry.text, text))
    if args.manifest and scored:
        result = word_errors([r for r, _ in scored], [h for _, h in scored])
        rate = f"{100 * result.rate:.2f}%" if result.rate is not None else "n/a"
        print(
            f"WER: {rate} ({result.errors} errors / {result.reference_words} reference words, "
            f"{len(scored)} utterances)",
            flush=True,
        )


def _print_stream(
    path: Path,
    audio: np.ndarray,
    url: str,
    protocol: str,
    model_name: str,
    chunk_seconds: float,
    sample_rate: int,
) -> None:
    """Stream one file in real time, printing each partial transcript, then the final one and
    the chunks' latencies."""
    chunk = max(1, int(round(chunk_seconds * sample_rate)))

    def show(index: int, text: str, latency: float) -> None:
        heard = min((index + 1) * chunk, audio.size) / sample_rate
        print(f"{path}\t{heard:.2f} s\t+{latency:.3f} s\t{' '.join(text.split())}", flush=True)

    client = connect(url, protocol)
    try:
        result = stream_audio(
            client, protocol, model_name, audio, chunk, sample_rate, True, on_partial=show
        )
    finally:
        client.close()
    latencies = np.array(result.latencies_s)
    print(f"{path}\t{' '.join(result.transcript.split())}", flush=True)
    print(
        f"{path}: {len(latencies)} chunks of {chunk_seconds:g} s; latency from a chunk's end to "
        f"its transcript: p50 {np.percentile(latencies, 50):.3f} s, p99 "
        f"{np.percentile(latencies, 99):.3f} s, max {latencies.max():.3f} s",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, __doc__)
    try:
        _run(args)
    except UserError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
