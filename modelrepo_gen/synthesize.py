"""Client for a served speech synthesis ensemble: text in, a WAV file out.

    python -m modelrepo_gen.synthesize "Hello there." -o hello.wav
    python -m modelrepo_gen.synthesize --protocol grpc --url 127.0.0.1:8001 "Hi." -o hi.wav
    python -m modelrepo_gen.synthesize "Slowly now." -o slow.wav -p length_scale=1.4 -p noise_w=0

The WAV is 16-bit mono PCM at the rate the ensemble declares. The text and the output path are
checked before the server is asked anything; every user error ends with one `error:` line and
a non-zero exit, and no partial file is left.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelrepo_gen.clients.asr_client import find_ensemble_model
from modelrepo_gen.clients.transcribe_args import (
    DEFAULT_URLS,
    PROTOCOLS,
    check_url,
)
from modelrepo_gen.clients.tts_client import synthesize_speech
from modelrepo_gen.clients.wav_writer import check_writable, write_wav
from modelrepo_gen.command_line import command_parser
from modelrepo_gen.core.errors import UserError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = command_parser("modelrepo_gen.synthesize", __doc__, pipelines="tts_")
    parser.add_argument("text", help="the text to speak (UTF-8)")
    parser.add_argument("-o", "--output", required=True, help="WAV file to write")
    parser.add_argument(
        "--url", help="server host:port (default 127.0.0.1:8000, or :8001 for grpc)"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="http")
    parser.add_argument("--model", help="ensemble name (default: the server's only ensemble)")
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=NUMBER",
        help="request parameter, repeatable (tts_piper: noise_scale, length_scale, noise_w)",
    )
    return parser.parse_args(argv)


def parse_parameters(pairs: list[str]) -> dict[str, float]:
    """NAME=NUMBER pairs; a UserError names the first that is not one."""
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name or number is None:
            raise UserError(f"--parameter must be NAME=NUMBER, got '{pair}'")
        parameters[name] = number
    return parameters


def _run(args: argparse.Namespace) -> None:
    url = args.url or DEFAULT_URLS[args.protocol]
    check_url(url)
    parameters = parse_parameters(args.parameter)
    if not args.text.strip():
        raise UserError("the text is empty: give the words to speak")
    output = Path(args.output).expanduser()
    check_writable(output)
    model_name = args.model or find_ensemble_model(url, args.protocol)
    speech = synthesize_speech(url, args.protocol, model_name, args.text, parameters)
    write_wav(output, speech.audio, speech.sample_rate)
    print(f"{output}: {speech.seconds:.2f} s of audio at {speech.sample_rate} Hz", flush=True)
    if speech.truncated:
        print(
            "warning: the speech was cut short: some sentence reached the model's step limit",
            file=sys.stderr,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        _run(args)
    except UserError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
