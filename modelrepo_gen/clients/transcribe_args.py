"""The transcription client's command line, checked before any file is read or server asked."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from modelrepo_gen.command_line import command_parser
from modelrepo_gen.core.errors import UserError

PROTOCOLS = ("http", "grpc")
DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}
MAX_SAMPLE_RATE = 384_000  # the highest rate audio hardware records
DEFAULT_BOOST = 10.0  # --boosted-words-score unless given
HOST_PORT = re.compile(r"(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+):(\d{1,5})")


def check_url(url: str) -> None:
    """host:port with a port in 1..65535; the clients fail late and noisily on anything else."""
    match = HOST_PORT.fullmatch(url)
    if not match:
        raise UserError(f"server URL must be host:port (like 127.0.0.1:8000), got '{url}'")
    port = int(match.group(2))
    if not 1 <= port <= 65535:
        raise UserError(f"server URL '{url}': port must be between 1 and 65535, got {port}")


def check_concurrency(concurrency: int) -> None:
    if concurrency < 1:
        raise UserError(f"--concurrency must be at least 1 request in flight, got {concurrency}")


def parse_args(argv: Sequence[str] | None, doc: str) -> argparse.Namespace:
    """The transcribe command's arguments; `doc` is its help (transcribe.py's docstring)."""
    parser = command_parser("modelrepo_gen.transcribe", doc, pipelines="asr_")
    parser.add_argument("files", nargs="*", help="audio files (wav, flac, ...)")
    parser.add_argument("--manifest", help="NeMo JSON-lines manifest; prints the WER too")
    parser.add_argument(
        "--url", help="server host:port (default 127.0.0.1:8000, or :8001 for grpc)"
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, help="http (the default) or grpc (--stream's default)"
    )
    parser.add_argument("--model", help="ensemble name (default: the server's only ensemble)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument(
        "--segments",
        action="store_true",
        help="print each segment with its start and end in seconds (Whisper pipelines)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="send each file in real-time chunks to a pipeline built with mode=streaming, "
        "printing the transcript so far as each chunk is answered, and each chunk's latency",
    )
    parser.add_argument(
        "--boosted-words",
        action="append",
        metavar="WORDS",
        help="words to favour, separated by commas; may be repeated (a pipeline built with "
        "decoder=ctc_beam and a language model or lexicon)",
    )
    parser.add_argument(
        "--boosted-words-score",
        type=float,
        default=None,
        help=f"score added to each boosted word (default {DEFAULT_BOOST}; negative: avoid it)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        help="resample to this rate (default: the rate the model declares)",
    )
    args = parser.parse_args(argv)
    args.protocol = args.protocol or ("grpc" if args.stream else "http")
    return args


def check_args(args: argparse.Namespace) -> None:
    """Everything about the arguments that can be wrong without reading a file."""
    if bool(args.files) == bool(args.manifest):
        raise UserError("give either audio files or --manifest (one of the two)")
    if args.stream and (args.manifest or args.segments or args.boosted_words):
        raise UserError(
            "--stream sends audio files, alone: not with --manifest, --segments or --boosted-words"
        )
    if args.segments and args.manifest:
        raise UserError("--segments prints segments of audio files, not a manifest's WER")
    check_url(args.url or DEFAULT_URLS[args.protocol])
    check_concurrency(args.concurrency)
    if args.boosted_words_score is not None and not args.boosted_words:
        raise UserError("--boosted-words-score needs --boosted-words")
    if args.sample_rate is not None and not 1 <= args.sample_rate <= MAX_SAMPLE_RATE:
        raise UserError(
            f"--sample-rate must be between 1 and {MAX_SAMPLE_RATE} Hz, got {args.sample_rate}"
        )


def request_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters every request carries: the boosted words, where there are some."""
    if not args.boosted_words:
        return {}
    score = DEFAULT_BOOST if args.boosted_words_score is None else args.boosted_words_score
    words = [w for value in args.boosted_words for w in re.split(r"[\s,]+", value) if w]
    return {"boosted_words": " ".join(words), "boosted_words_score": score}
