"""What the command-line tools share: one-line argument errors and a --help that says what the
command does, shows its examples and lists the pipelines it works with.

A command's module docstring is its help: the first paragraph says what it does, its indented
`python -m ...` lines are the examples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from modelrepo_gen.core.resources import pipeline_names


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `error:` line (exit 2) like every other user error."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr, flush=True)
        sys.exit(2)


def command_name(module: str) -> str:
    """How the user ran `module`: its console script (modelrepo-gen-ask) or python -m."""
    script = "modelrepo-gen-" + module.rsplit(".", 1)[-1].replace("_", "-")
    return script if Path(sys.argv[0]).name == script else f"python -m {module}"


def command_parser(module: str, doc: str, pipelines: str = "") -> OneLineParser:
    """The parser of command `module` documented by `doc`; its help lists the pipelines whose
    names start with `pipelines` (every pipeline for "")."""
    paragraphs = doc.strip().split("\n\n")
    examples = [line.strip() for line in doc.splitlines() if line.startswith("    python -m")]
    names = [name for name in pipeline_names() if name.startswith(pipelines)]
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else ""
    epilog += f"\n\npipelines: {', '.join(names)}"
    return OneLineParser(
        prog=command_name(module),
        description=paragraphs[0].replace("\n", " "),
        epilog=epilog.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
