"""Client for a served NLP ensemble: text in, a structured answer out.

    python -m modelrepo_gen.ask nlp_qa --question "Who wrote it?" --context "..."
    python -m modelrepo_gen.ask nlp_punctuation "hello how are you"
    python -m modelrepo_gen.ask nlp_token_classification --json - < article.txt

The model's inputs and task are read from the server. Every user error ends with one
`error:` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from modelrepo_gen.clients.text_client import TextModel
from modelrepo_gen.clients.transcribe_args import DEFAULT_URLS, PROTOCOLS
from modelrepo_gen.command_line import command_parser
from modelrepo_gen.components.triton_python.nlp_tasks import TASKS
from modelrepo_gen.core.errors import UserError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = command_parser("modelrepo_gen.ask", __doc__, pipelines="nlp_")
    parser.add_argument("model", help="the served ensemble, e.g. nlp_qa")
    parser.add_argument("text", nargs="?", help="the text ('-' reads standard input)")
    parser.add_argument("--question", help="question answering: the question")
    parser.add_argument("--context", help="question answering: the context ('-': stdin)")
    parser.add_argument("--url", help="host:port (default: 127.0.0.1:8000 http, :8001 grpc)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="http")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    # Intermixed: plain parse_args binds `model` and the optional `text` together at the first
    # positional, so `MODEL --url U TEXT` would reject TEXT as an unrecognized argument.
    return parser.parse_intermixed_args(argv)


def _read(value: str | None) -> str | None:
    if value != "-":
        return value
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"standard input is not valid UTF-8 ({error.reason})") from None


def describe(task: str, answer: dict) -> list[str]:
    """The answer as lines for a person to read (as its task says: nlp_tasks.py)."""
    return TASKS[task].describe(answer)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        text, context = _read(args.text), _read(args.context)
        model = TextModel(args.url or DEFAULT_URLS[args.protocol], args.protocol, args.model)
        answer = model.ask(model.request_texts(text, args.question, context))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        print("\n".join(describe(model.task, answer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
