"""`make demo`: build the default repository, serve it, transcribe real speech, stop the server."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from modelrepo_gen.clients.audio import load_audio
from modelrepo_gen.errors import UserError
from modelrepo_gen.serve.server import TritonServer
from modelrepo_gen.transcribe import transcribe_arrays

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", default="demo_repository")
    parser.add_argument("overrides", nargs="*", help="config overrides for the build")
    args = parser.parse_args(argv)
    repository = Path(args.repository).resolve()
    build = [sys.executable, "-m", "modelrepo_gen", f"output_dir={repository}", "force=true"]
    print("$", " ".join(build[1:] + args.overrides), flush=True)
    if subprocess.run(build + args.overrides).returncode != 0:
        return 1
    files = sorted(LIBRIVOX.glob("*.wav"))[:2]
    if not files:
        print(
            f"error: no speech samples under {LIBRIVOX} (make speech installs them)",
            file=sys.stderr,
        )
        return 1
    try:
        with TritonServer(repository, http_port=0, grpc_port=0, metrics_port=0) as server:
            print(f"Triton server ready at http://{server.http_url}", flush=True)
            audios = [load_audio(f) for f in files]
            transcripts = transcribe_arrays(audios, url=server.http_url, protocol="http")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path, transcript in zip(files, transcripts, strict=True):
        print(f"{path.name}\t{transcript!r}")
    print(
        "The server stopped. These transcripts come from the served ensemble; with no "
        "model.checkpoint the acoustic model has random weights, so they are not words."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
