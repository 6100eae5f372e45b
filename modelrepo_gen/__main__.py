"""Command line: python -m modelrepo_gen [pipeline=NAME] [group=option ...] [key=value ...]

Kept tiny: it sets up signal handling before the command's heavy imports (torch, Hydra; in
modelrepo_gen.cli), so Ctrl-C or SIGTERM at any moment ends the command with one line.
"""

from __future__ import annotations

from modelrepo_gen.repository.interrupts import stop_on_signals


def main() -> None:
    stop_on_signals()
    from modelrepo_gen.cli import main as run_command

    run_command()


if __name__ == "__main__":
    main()
