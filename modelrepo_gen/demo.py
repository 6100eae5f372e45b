"""`make demo`: build a repository, serve it, transcribe real speech, stop the server.

By default the repository is `asr_whisper` from the installed Whisper tiny.en, so the served
transcripts are real; any other pipeline can be given as overrides (`pipeline=asr_quartznet`).
Then it builds `tts_piper` (the installed Piper voice) beside it, serves both, speaks a
sentence and transcribes the speech back with the ASR pipeline, printing both texts.

    python -m modelrepo_gen.demo --repository demo_repository [override ...]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from modelrepo_gen.clients.asr_client import (
    check_asr_model,
    find_ensemble_model,
    served_sample_rate,
)
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.clients.librivox import librivox_utterances
from modelrepo_gen.clients.tts_client import synthesize_speech
from modelrepo_gen.command_line import command_parser
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.repository.manifest import MANIFEST
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays, word_errors

DEFAULT_PIPELINE = "pipeline=asr_whisper"
SPEECH_PIPELINE = "pipeline=tts_piper"
SENTENCE = "The quick brown fox jumps over the lazy dog, and the dog sleeps on."


def _build(repository: Path, overrides: list[str]) -> bool:
    build = ["-m", "modelrepo_gen", f"output_dir={repository}", "force=true", *overrides]
    print("$ python", " ".join(build), flush=True)
    return subprocess.run([sys.executable, *build]).returncode == 0


def speak_and_hear(asr: TritonServer, speech_repository: Path) -> str:
    """Speak SENTENCE with the served Piper voice, transcribe it back with the served ASR;
    the report of both texts."""
    with TritonServer(speech_repository, http_port=0, grpc_port=0, metrics_port=0) as tts:
        print(f"Triton server (speech synthesis) ready at http://{tts.http_url}", flush=True)
        model = find_ensemble_model(tts.http_url)
        speech = synthesize_speech(tts.http_url, "http", model, SENTENCE)
    rate = served_sample_rate(
        check_asr_model(asr.http_url, "http", find_ensemble_model(asr.http_url))
    )
    divisor = math.gcd(speech.sample_rate, rate)
    audio = resample_poly(speech.audio, rate // divisor, speech.sample_rate // divisor)
    (heard,) = transcribe_arrays([audio.astype(np.float32)], url=asr.http_url, protocol="http")
    return (
        f"\n{model}: {speech.seconds:.2f} s of speech at {speech.sample_rate} Hz, "
        f"transcribed back\n  spoken: {SENTENCE}\n  heard:  {heard}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("modelrepo_gen.demo", __doc__)
    parser.add_argument("--repository", default="demo_repository")
    parser.add_argument(
        "--speech-repository", help="where tts_piper is built (default: REPOSITORY_tts)"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides for the build")
    args = parser.parse_args(argv)
    repository = Path(args.repository).resolve()
    overrides = args.overrides
    if not any(o.startswith("pipeline=") for o in overrides):
        overrides = [DEFAULT_PIPELINE, *overrides]
    speech_repository = Path(args.speech_repository or f"{repository}_tts").resolve()
    if not _build(repository, overrides) or not _build(speech_repository, [SPEECH_PIPELINE]):
        return 1
    try:
        utterances = librivox_utterances()
        audios = [load_audio(path) for path, _ in utterances]
        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
            print(f"Triton server ready at http://{server.http_url}", flush=True)
            transcripts = transcribe_arrays(audios, url=server.http_url, protocol="http")
            spoken = speak_and_hear(server, speech_repository)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for (path, reference), transcript in zip(utterances, transcripts, strict=True):
        print(f"\n{path.name}\n  served:    {transcript}\n  reference: {reference}")
    errors = word_errors([text for _, text in utterances], transcripts)
    print(
        f"\nword error rate: {errors.rate:.3f} ({errors.errors} errors in "
        f"{errors.reference_words} words; case, punctuation and titles normalised)"
    )
    print(spoken)
    notes = json.loads((repository / MANIFEST).read_text())["notes"]
    for note in notes:  # e.g. random weights: the transcripts above are then not words
        print(note)
    print("The servers stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
