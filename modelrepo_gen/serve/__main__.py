"""Serve a Triton model repository with the bundled Triton server (loopback addresses) until
Ctrl-C or SIGTERM, restarting the server and reloading any model whose python worker died.

    python -m modelrepo_gen.serve model_repository
    python -m modelrepo_gen.serve model_repository --http-port 8000 --models asr_quartznet
    python -m modelrepo_gen.serve model_repository --http-port 0 --grpc-port 0 --log-file t.log
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from modelrepo_gen.command_line import command_parser
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.launch import DEFAULT_STACK_LIMIT_MIB
from modelrepo_gen.serve.server import TritonServer, check_port
from modelrepo_gen.serve.supervisor import Supervisor


class _StopRequested(Exception):
    """Raised from the signal handler so a wait (or a start in progress) ends at once."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def _whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum or (maximum is not None and value > maximum):
            upper = f"..{maximum}" if maximum is not None else " or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {minimum}{upper}")
        return value

    return parse


def _port(text: str) -> int:
    value = _integer(text)
    try:
        check_port("", value)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix(" port ")) from None
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = command_parser("modelrepo_gen.serve", __doc__)
    parser.add_argument("repository", help="model repository folder")
    port_help = "1..65535, or 0 for a free port"
    parser.add_argument("--http-port", type=_port, default=8000, help=port_help)
    parser.add_argument("--grpc-port", type=_port, default=8001, help=port_help)
    parser.add_argument("--metrics-port", type=_port, default=8002, help=port_help)
    parser.add_argument("--log-file", default=None, help="write the server log here")
    parser.add_argument(
        "--models", default=None, help="comma-separated models to load (default: all)"
    )
    parser.add_argument(
        "--startup-timeout", type=_positive_seconds, default=120, help="seconds to wait for READY"
    )
    parser.add_argument(
        "--max-restarts",
        type=_whole_number(0),
        default=5,
        help="restarts of a crashed server, or reloads of a model whose python worker died, "
        "allowed within --restart-window (0: none)",
    )
    parser.add_argument(
        "--restart-window", type=_positive_seconds, default=300, help="seconds (default 300)"
    )
    parser.add_argument(
        "--stack-limit-mib",
        type=_whole_number(8, 1 << 20),
        default=DEFAULT_STACK_LIMIT_MIB,
        help="the server's stack limit; it survives form-encoded HTTP bodies up to about half "
        f"of it (default {DEFAULT_STACK_LIMIT_MIB})",
    )
    parser.add_argument(
        "--python",
        type=_python_executable,
        help="the Python whose environment the python models run in (default: this one; same "
        "version); e.g. a bare one, for a repository deployed with its packages",
    )
    return parser.parse_args(argv)


def _python_executable(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise argparse.ArgumentTypeError(f"'{text}' is not a Python executable")
    return path.absolute()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    server = TritonServer(
        args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_path=args.log_file,
        startup_timeout_s=args.startup_timeout,
        models=models,
        stack_limit_mib=args.stack_limit_mib,
        python=args.python,
    )
    supervisor = Supervisor(server, args.max_restarts, args.restart_window)
    previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    exit_code, started = 0, False
    try:
        server.start()
        started = True
        _print_endpoints(server)
        supervisor.watch()
    except _StopRequested:
        print("stopping Triton server", flush=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        exit_code = 1
    finally:
        # A second Ctrl-C must not cut the cleanup short and orphan the server.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if started:
        print(f"Triton server stopped (restarts: {supervisor.restarts})", flush=True)
    return exit_code


def _print_endpoints(server: TritonServer) -> None:
    models = server.ready_models()
    print(f"Triton server ready, serving {server.repository}")
    print(f"  HTTP:    {server.http_url}")
    print(f"  gRPC:    {server.grpc_url}")
    print(f"  metrics: {server.metrics_url}/metrics")
    print(f"  log:     {server.log_path}")
    print(f"ready models ({len(models)}): {', '.join(models) or 'none'}")
    print("press Ctrl-C to stop", flush=True)


if __name__ == "__main__":
    sys.exit(main())
