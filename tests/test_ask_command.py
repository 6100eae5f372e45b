"""The ask command's arguments: options go before, after or between the model and the text.

No server is needed: nothing listens at 127.0.0.1:1, so a command whose arguments were read
right ends with one `error:` line about the connection. (The answers of a served model are
checked in test_served_nlp.py.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.project import ROOT

from modelrepo_gen.ask import parse_args

MODEL, TEXT = "nlp_text_classification", "great value"
OPTIONS = ["--protocol", "grpc", "--url", "127.0.0.1:1", "--json"]


@pytest.mark.parametrize(
    "argv",
    [
        [*OPTIONS, MODEL, TEXT],
        [MODEL, *OPTIONS, TEXT],
        [MODEL, TEXT, *OPTIONS],
        [OPTIONS[0], OPTIONS[1], MODEL, *OPTIONS[2:4], TEXT, OPTIONS[4]],
    ],
    ids=["before", "between", "after", "mixed"],
)
def test_options_and_positionals_in_any_order_read_the_same(argv: list[str]) -> None:
    args = parse_args(argv)
    assert args == parse_args([MODEL, TEXT, *OPTIONS])
    assert (args.model, args.text, args.protocol, args.url, args.json) == (
        MODEL,
        TEXT,
        "grpc",
        "127.0.0.1:1",
        True,
    )


def test_question_answering_needs_no_text_and_extra_words_are_refused(capsys) -> None:
    args = parse_args(["nlp_qa", "--question", "Who?", "--context", "-"])
    assert (args.model, args.text, args.question, args.context) == ("nlp_qa", None, "Who?", "-")
    with pytest.raises(SystemExit) as refused:
        parse_args([MODEL, "--url", "127.0.0.1:1", TEXT, "more"])
    assert refused.value.code == 2
    assert "unrecognized arguments: more" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_text_after_the_options_reaches_the_connection(protocol: str) -> None:
    command = [sys.executable, "-m", "modelrepo_gen.ask", "nlp_x", "--protocol", protocol]
    done = subprocess.run(
        [*command, "--url", "127.0.0.1:1", TEXT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: Triton at '127.0.0.1:1' ({protocol}) failed to answer")
