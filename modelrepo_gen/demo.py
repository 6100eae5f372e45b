"""`make demo`: build a repository, serve it, transcribe real speech, stop the server.

By default the repository is `asr_whisper` from the installed Whisper tiny.en, so the served
transcripts are real; any other pipeline can be given as overrides (`pipeline=asr_quartznet`).

    python -m modelrepo_gen.demo --repository demo_repository [override ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from modelrepo_gen.build.manifest import MANIFEST
from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.clients.librivox import librivox_utterances
from modelrepo_gen.errors import UserError
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays, word_errors

DEFAULT_PIPELINE = "pipeline=asr_whisper"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", default="demo_repository")
    parser.add_argument("overrides", nargs="*", help="config overrides for the build")
    args = parser.parse_args(argv)
    repository = Path(args.repository).resolve()
    overrides = args.overrides
    if not any(o.startswith("pipeline=") for o in overrides):
        overrides = [DEFAULT_PIPELINE, *overrides]
    build = ["-m", "modelrepo_gen", f"output_dir={repository}", "force=true", *overrides]
    print("$ python", " ".join(build), flush=True)
    if subprocess.run([sys.executable, *build]).returncode != 0:
        return 1
    try:
        utterances = librivox_utterances()
        audios = [load_audio(path) for path, _ in utterances]
        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
            print(f"Triton server ready at http://{server.http_url}", flush=True)
            transcripts = transcribe_arrays(audios, url=server.http_url, protocol="http")
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
    notes = json.loads((repository / MANIFEST).read_text())["notes"]
    for note in notes:  # e.g. random weights: the transcripts above are then not words
        print(note)
    print("The server stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
