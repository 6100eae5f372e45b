"""Serve a model repository with the bundled Triton server until Ctrl-C or SIGTERM.

python -m modelrepo_gen.serve model_repository --http-port 8000 --models asr_quartznet
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from modelrepo_gen.errors import UserError
from modelrepo_gen.triton_log import summarize_log_errors
from modelrepo_gen.triton_server import TritonServer


class _StopRequested(Exception):
    """Raised from the signal handler so a wait (or a start in progress) ends at once."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modelrepo_gen.serve",
        description="Serve a Triton model repository on this machine (loopback addresses).",
    )
    parser.add_argument("repository", help="model repository folder")
    parser.add_argument("--http-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="0 picks a free port")
    parser.add_argument("--log-file", default=None, help="write the server log here")
    parser.add_argument(
        "--models", default=None, help="comma-separated models to load (default: all)"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=120, help="seconds to wait for READY"
    )
    return parser.parse_args(argv)


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
    )
    previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        server.start()
        _print_endpoints(server)
        while server.is_running():
            time.sleep(0.5)
        raise UserError(
            f"Triton server stopped unexpectedly: {summarize_log_errors(server.read_log())}"
        )
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
