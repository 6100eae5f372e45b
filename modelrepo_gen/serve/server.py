"""Start and stop the real Triton Inference Server bundled in PyPI's nvidia-pytriton.

How it is launched is in ``triton_launch``; what it leaves behind when killed is removed by
``stop()`` or, if this Python process is killed, by the ``reaper`` watchdog.

    with TritonServer("model_repository", http_port=0, grpc_port=0, metrics_port=0) as server:
        print(server.http_url, server.ready_models())
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.launch import (
    DEFAULT_STACK_LIMIT_MIB,
    EXIT_TIMEOUT_S,
    bundled_triton_root,
    check_triton_root,
    child_setup,
    make_work_dir,
    server_command,
    server_environment,
)
from modelrepo_gen.serve.leftovers import LaunchLeftovers
from modelrepo_gen.serve.log import (
    last_activity,
    load_failure_message,
    states_by_model,
    summarize_log_errors,
    unloaded_model_reasons,
)
from modelrepo_gen.serve.processes import HOST, exit_reason, free_port, kill_group, port_is_free
from modelrepo_gen.serve.reaper import Reaper
from modelrepo_gen.serve.workers import Worker, python_workers

__all__ = ["TritonServer", "bundled_triton_root", "check_port"]


def check_port(kind: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise UserError(f"{kind} port {port} is out of range: use 1..65535, or 0 for a free port")


class TritonServer:
    """A real ``tritonserver`` process serving ``repository`` on loopback addresses.

    Ports set to 0 are replaced by free ports when the server starts. ``models`` names the
    models to load (default: all of them, ``--load-model=*``). ``start()`` returns once the
    server and every requested model are READY, or raises UserError with Triton's reason and
    leaves nothing running. Start it from a thread that outlives it
    (see ``processes.die_with_parent``). ``stack_limit_mib`` is the server's RLIMIT_STACK,
    which bounds the form-encoded HTTP body it survives (about half of it; None: inherited).
    ``python`` is the Python executable whose environment the python models run in (default:
    this one; it must be of the same version).
    """

    def __init__(
        self,
        repository: str | os.PathLike[str],
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 120,
        models: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        triton_root: str | os.PathLike[str] | None = None,
        stack_limit_mib: int | None = DEFAULT_STACK_LIMIT_MIB,
        python: str | os.PathLike[str] | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        self._requested_ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self._ports = dict(self._requested_ports)
        self._user_log_path = Path(log_path).resolve() if log_path is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.models = list(models) if models else None
        self.extra_args = list(extra_args)
        self._triton_root = Path(triton_root) if triton_root is not None else None
        self.stack_limit_mib = stack_limit_mib
        self.python = Path(python) if python is not None else None  # where python models run
        self._process: subprocess.Popen[bytes] | None = None
        self._reaper: Reaper | None = None
        self._work_dir: Path | None = None
        self._log_path: Path | None = None
        self._log_cache: str | None = None  # the log text, kept when the work dir is removed
        self._log_offset = 0  # where the latest launch's log starts in the file
        self._leftovers = LaunchLeftovers()

    # -- endpoints -------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{HOST}:{self._ports['http']}"

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self._ports['grpc']}"

    @property
    def metrics_url(self) -> str:
        """``host:port``; Prometheus metrics are served under ``/metrics``."""
        return f"{HOST}:{self._ports['metrics']}"

    @property
    def log_path(self) -> Path | None:
        """The server log (inside the work folder unless ``log_path`` was given)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Process id of tritonserver; also the id of its process group."""
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """How the last launched server ended (negative: killed by that signal); None: running."""
        return self._process.poll() if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def read_log(self) -> str:
        """The log of the latest launch (a restart appends to a ``log_path`` given)."""
        if self._log_cache is not None:
            return self._log_cache
        if self._log_path is None:
            return ""
        try:
            with open(self._log_path, "rb") as log_file:
                log_file.seek(self._log_offset)
                return log_file.read().decode(errors="replace")
        except OSError:
            return ""

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, same_ports: bool = False) -> None:
        """Launch the server and wait until it and every requested model are READY.

        ``same_ports``: reuse the ports of the previous launch (a restart), even if they
        were picked because 0 was asked for.
        """
        if self.is_running():
            raise RuntimeError(f"Triton server already running (pid {self.pid})")
        triton_root = self._check_inputs()
        requested = dict(self._ports) if same_ports else self._requested_ports
        for attempt in range(3):
            self._pick_ports(requested)
            try:
                self._launch(triton_root, append_log=same_ports)
                self._wait_until_ready()
                return
            except UserError as error:
                log_text = self.read_log()
                self.stop()
                port_race = "Address already in use" in log_text and 0 in requested.values()
                if not (port_race and attempt < 2):  # a free port can be taken before use
                    raise error from None
            except BaseException:  # Ctrl-C while starting: leave nothing behind
                self.stop()
                raise

    def stop(self) -> None:
        """Stop the server (SIGINT, then SIGKILL), its stubs, shm regions and work folder."""
        process = self._process  # cleared only at the end: an interrupted stop can be redone
        if process is not None:
            pgid = process.pid
            self._leftovers.note_processes(pgid)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # Triton unloads models and exits cleanly
                try:
                    process.wait(timeout=EXIT_TIMEOUT_S + 5)
                except subprocess.TimeoutExpired:
                    kill_group(pgid)
                    process.wait()
            kill_group(pgid)  # stubs left behind by a server that was killed
            self._leftovers.remove()  # what a killed or crashed server could not remove
            atexit.unregister(self.stop)
            self._process = None
        if self._work_dir is not None:
            if self._user_log_path is None:
                self._log_cache = self.read_log()
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            if self._user_log_path is None:
                self._log_path = None
        if self._reaper is not None:
            self._reaper.release()  # after the cleanup: a kill during stop() is still covered
            self._reaper = None

    # -- model state -----------------------------------------------------------------------
    def repository_index(self, timeout_s: float = 5) -> list[dict]:
        """Triton's repository index: one entry per model (and version) with state/reason."""
        return json.loads(self._http("POST", "/v2/repository/index", timeout_s) or b"[]")

    def ready_models(self) -> list[str]:
        names = {e["name"] for e in self.repository_index() if e.get("state") == "READY"}
        return sorted(names)

    def python_workers(self) -> dict[int, Worker]:
        """The live python-backend worker processes (one per model instance), by pid."""
        return python_workers(self.pid) if self.is_running() and self.pid else {}

    def unload_model(self, name: str) -> None:
        """Ask Triton to unload `name` (ensembles that use it go with it); returns at once."""
        self._http("POST", f"/v2/repository/models/{urllib.parse.quote(name)}/unload", 30)

    def load_model(self, name: str) -> None:
        """Load `name` (again) from the repository, and the ensembles that use it; returns when
        it is loaded, raises UserError with Triton's reason when it cannot be."""
        try:
            self._http(
                "POST",
                f"/v2/repository/models/{urllib.parse.quote(name)}/load",
                self.startup_timeout_s,
            )
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            try:
                reason = str(json.loads(body).get("error", body))
            except (ValueError, AttributeError):
                reason = body
            raise UserError(load_failure_message({name: reason})) from None

    # -- internals -------------------------------------------------------------------------
    def _check_inputs(self) -> Path:
        for kind, port in self._requested_ports.items():
            check_port(kind, port)
        if not self.repository.is_dir():
            problem = "is not a folder" if self.repository.exists() else "does not exist"
            raise UserError(f"model repository '{self.repository}' {problem}")
        for name in self.models or []:
            if not (self.repository / name).is_dir():
                present = sorted(p.name for p in self.repository.iterdir() if p.is_dir())
                raise UserError(
                    f"model '{name}' is not in repository '{self.repository}' "
                    f"(it holds: {', '.join(present) or 'nothing'})"
                )
        root = self._triton_root or bundled_triton_root()
        check_triton_root(root)
        return root

    def _pick_ports(self, requested: dict[str, int]) -> None:
        taken = set(requested.values())  # a picked port must not clash with a given one
        for kind, port in requested.items():
            if port == 0:
                self._ports[kind] = free_port(taken)
                taken.add(self._ports[kind])
            elif not port_is_free(port):
                raise UserError(
                    f"{kind} port {port} on {HOST} is already in use; choose another port"
                )
            else:
                self._ports[kind] = port
        if len(set(self._ports.values())) != 3:
            raise UserError(f"the http, grpc and metrics ports must differ: {self._ports}")

    def _launch(self, triton_root: Path, append_log: bool) -> None:
        self._work_dir = make_work_dir(triton_root)
        self._log_cache = None
        self._log_path = self._user_log_path or self._work_dir / "tritonserver.log"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._leftovers = LaunchLeftovers()
        # A restart keeps the crashed server's log (and its reason) before the new one.
        with open(self._log_path, "ab" if append_log else "wb") as log_file:
            self._log_offset = log_file.tell()
            self._process = subprocess.Popen(
                server_command(
                    self._work_dir, self.repository, self._ports, self.models, self.extra_args
                ),
                env=server_environment(self.python),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                start_new_session=True,  # own process group: stop() reaches every stub
                preexec_fn=child_setup(self.stack_limit_mib),
            )
        atexit.register(self.stop)
        self._reaper = Reaper(self._process.pid, self._work_dir, EXIT_TIMEOUT_S + 5)

    def _http(self, method: str, path: str, timeout_s: float) -> bytes:
        request = urllib.request.Request(
            f"http://{self.http_url}{path}", method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read()

    def _health_ready(self) -> bool:
        try:
            self._http("GET", "/v2/health/ready", 2)
            return True
        except (urllib.error.URLError, OSError):  # HTTPError (400: not ready) is a URLError
            return False

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                # A crash leaves no error line: what it was doing last says more.
                log_text = self.read_log()
                why = summarize_log_errors(log_text) if returncode > 0 else last_activity(log_text)
                raise UserError(
                    f"Triton server exited ({exit_reason(returncode)}) before it was ready: "
                    f"{why}{self._log_hint()}"
                )
            # A config.pbtxt that does not parse is logged at once, never loaded, and may be
            # missing from the index: fail now rather than wait for it.
            unloaded = unloaded_model_reasons(self.read_log())
            failed = {n: r for n, r in unloaded.items() if self.models is None or n in self.models}
            try:
                index = self.repository_index(timeout_s=2)
            except (urllib.error.URLError, OSError, ValueError):
                index = None  # endpoints come up only after the startup loads finished
            if index is not None and not failed:
                wanted = self.models or sorted({e["name"] for e in index})
                states = states_by_model(index)
                # Up means the startup loads are over: a model without a state was not loaded.
                failed = {
                    n: s[1] or "not loaded (see the server log)"
                    for n in wanted
                    if (s := states.get(n, ("", "")))[0] in ("UNAVAILABLE", "")
                }
                if not failed and self._health_ready():
                    self._on_ready()
                    return
            if failed:
                raise UserError(load_failure_message(failed) + self._log_hint())
            if time.monotonic() > deadline:
                waiting = self.models or ["the server"]
                if index is not None:
                    waiting = [n for n in wanted if states.get(n, ("",))[0] != "READY"]
                raise UserError(
                    f"Triton server was not ready after {self.startup_timeout_s:g} s "
                    f"(waiting for: {', '.join(waiting) or 'health/ready'}){self._log_hint()}"
                )
            time.sleep(0.2)

    def _on_ready(self) -> None:
        assert self._process is not None and self._reaper is not None
        self._reaper.note_python_env_dirs(self._leftovers.note_ready(self._process.pid))

    def _log_hint(self) -> str:
        return f" (server log: {self._user_log_path})" if self._user_log_path else ""
