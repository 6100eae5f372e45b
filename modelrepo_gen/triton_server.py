"""Start and stop the real Triton Inference Server bundled in PyPI's nvidia-pytriton.

The server is launched the way pytriton's own launcher does it (see PLATFORM.md): the bundled
``bin/``, ``backends/`` and ``caches/`` are copied into a private work folder together with the
python backend stub built for the running Python, and the binary runs with the vendored
libraries plus this Python's LIBDIR on ``LD_LIBRARY_PATH`` and this environment's ``bin/`` first
on ``PATH`` (so python-backend models import this environment's packages).

    with TritonServer("model_repository", http_port=0, grpc_port=0, metrics_port=0) as server:
        print(server.http_url, server.ready_models())
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from modelrepo_gen.errors import UserError
from modelrepo_gen.processes import (
    HOST,
    die_with_parent,
    free_port,
    group_members,
    pid_alive,
    port_is_free,
    shm_regions_of,
)
from modelrepo_gen.triton_log import load_failure_message, states_by_model, summarize_log_errors

EXIT_TIMEOUT_S = 10  # passed as --exit-timeout-secs; SIGKILL follows a few seconds later
WORK_DIR_PREFIX = "modelrepo_gen_triton_"
OWNER_FILE = "owner.pid"  # the Python process that started the server
_SHM_DIR = Path("/dev/shm")
# The python backend makes an (empty) /tmp/python_env_XXXXXX and removes it on a clean exit.
_PYTHON_ENV_GLOB = "/tmp/python_env_*"


def bundled_triton_root() -> Path:
    """Folder of the tritonserver bundled in nvidia-pytriton (bin/, backends/, caches/, stubs)."""
    spec = importlib.util.find_spec("pytriton")  # located, not imported: pytriton is heavy
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the Triton server binary is not installed: pip install nvidia-pytriton==0.7.0"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "tritonserver"


def _bundled_libs_dir() -> Path | None:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent / "nvidia_pytriton.libs"


def _link_or_copy(source: str, target: str) -> str:
    # A hard link costs no disk and no time; the 29 MB copy is the fallback across filesystems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def _sweep_stale_work_dirs() -> None:
    """Remove work folders left by Python processes that were killed without stop()."""
    for folder in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not pid_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


class TritonServer:
    """A real ``tritonserver`` process serving ``repository`` on loopback addresses.

    Ports set to 0 are replaced by free ports when the server starts. ``models`` names the
    models to load (default: all of them, ``--load-model=*``). ``start()`` returns once the
    server and every requested model are READY, or raises UserError with Triton's reason and
    leaves nothing running. Start it from a thread that outlives it
    (see ``processes.die_with_parent``).
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
    ) -> None:
        self.repository = Path(repository).resolve()
        self._requested_ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self._ports = dict(self._requested_ports)
        self._user_log_path = Path(log_path).resolve() if log_path is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.models = list(models) if models else None
        self.extra_args = list(extra_args)
        self._triton_root = Path(triton_root) if triton_root is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._log_path: Path | None = None
        self._log_cache: str | None = None  # the log text, kept when the work dir is removed
        self._shm_regions: set[str] = set()
        self._python_envs_before: set[str] = set()
        self._python_env_dirs: set[str] = set()

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

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def read_log(self) -> str:
        if self._log_cache is not None:
            return self._log_cache
        if self._log_path is None:
            return ""
        try:
            return self._log_path.read_text(errors="replace")
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

    def start(self) -> None:
        """Launch the server and wait until it and every requested model are READY."""
        if self.is_running():
            raise RuntimeError(f"Triton server already running (pid {self.pid})")
        triton_root = self._check_inputs()
        for attempt in range(3):
            self._pick_ports()
            try:
                self._launch(triton_root)
                self._wait_until_ready()
                return
            except UserError as error:
                log_text = self.read_log()
                self.stop()
                port_race = "Address already in use" in log_text and 0 in (
                    self._requested_ports.values()
                )
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
            self._shm_regions |= shm_regions_of(group_members(pgid))
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # Triton unloads models and exits cleanly
                try:
                    process.wait(timeout=EXIT_TIMEOUT_S + 5)
                except subprocess.TimeoutExpired:
                    self._kill_group(pgid)
                    process.wait()
            self._kill_group(pgid)  # stubs left behind by a server that was killed
            for region in self._shm_regions:  # present only if the server did not clean up
                (_SHM_DIR / region).unlink(missing_ok=True)
            if process.returncode == -signal.SIGKILL:  # it could not remove its python_env dir
                for folder in self._python_env_dirs:
                    with contextlib.suppress(OSError):  # not empty: in use, not ours
                        os.rmdir(folder)
            self._shm_regions, self._python_env_dirs = set(), set()
            atexit.unregister(self.stop)
            self._process = None
        if self._work_dir is not None:
            if self._user_log_path is None:
                self._log_cache = self.read_log()
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            if self._user_log_path is None:
                self._log_path = None

    @staticmethod
    def _kill_group(pgid: int) -> None:
        deadline = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)  # SIGKILL is delivered asynchronously

    # -- model state -----------------------------------------------------------------------
    def repository_index(self, timeout_s: float = 5) -> list[dict]:
        """Triton's repository index: one entry per model (and version) with state/reason."""
        return json.loads(self._http("POST", "/v2/repository/index", timeout_s) or b"[]")

    def ready_models(self) -> list[str]:
        names = {e["name"] for e in self.repository_index() if e.get("state") == "READY"}
        return sorted(names)

    # -- internals -------------------------------------------------------------------------
    def _check_inputs(self) -> Path:
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
        if not (root / "bin" / "tritonserver").is_file():
            raise UserError(
                f"the Triton server binary is missing: no '{root / 'bin' / 'tritonserver'}'; "
                "install it with pip install nvidia-pytriton==0.7.0"
            )
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        if not (root / "python_backend_stubs" / version / "triton_python_backend_stub").is_file():
            raise UserError(
                f"the bundled Triton server has no python backend stub for Python {version} "
                f"(under '{root / 'python_backend_stubs'}'); use a Python it ships a stub for"
            )
        return root

    def _pick_ports(self) -> None:
        for kind, port in self._requested_ports.items():
            if port == 0:
                self._ports[kind] = free_port()
            elif not port_is_free(port):
                raise UserError(
                    f"{kind} port {port} on {HOST} is already in use; choose another port"
                )
            else:
                self._ports[kind] = port
        if len(set(self._ports.values())) != 3:
            raise UserError(f"the http, grpc and metrics ports must differ: {self._ports}")

    def _launch(self, triton_root: Path) -> None:
        _sweep_stale_work_dirs()
        self._work_dir = Path(tempfile.mkdtemp(prefix=WORK_DIR_PREFIX))
        self._log_cache = None
        for part in ("bin", "backends", "caches"):
            shutil.copytree(triton_root / part, self._work_dir / part, copy_function=_link_or_copy)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        _link_or_copy(
            str(triton_root / "python_backend_stubs" / version / "triton_python_backend_stub"),
            str(self._work_dir / "backends" / "python" / "triton_python_backend_stub"),
        )
        (self._work_dir / OWNER_FILE).write_text(str(os.getpid()))
        self._log_path = self._user_log_path or self._work_dir / "tritonserver.log"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        python_envs_before = set(glob.glob(_PYTHON_ENV_GLOB))
        with open(self._log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                self._command(),
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self._work_dir,
                start_new_session=True,  # own process group: stop() reaches every stub
                preexec_fn=die_with_parent,
            )
        atexit.register(self.stop)
        self._python_envs_before = python_envs_before

    def _command(self) -> list[str]:
        assert self._work_dir is not None
        work = self._work_dir
        loads = self.models or ["*"]
        return [
            str(work / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={work / 'backends'}",
            f"--cache-directory={work / 'caches'}",
            "--backend-config=python,shm-default-byte-size=4194304",
            "--backend-config=python,shm-growth-byte-size=1048576",
            "--model-control-mode=explicit",
            *[f"--load-model={name}" for name in loads],
            # Keep serving when a model fails, so the repository index can say why.
            "--exit-on-error=false",
            f"--http-address={HOST}",
            f"--grpc-address={HOST}",
            f"--metrics-address={HOST}",
            f"--http-port={self._ports['http']}",
            f"--grpc-port={self._ports['grpc']}",
            f"--metrics-port={self._ports['metrics']}",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            *self.extra_args,
        ]

    @staticmethod
    def _environment() -> dict[str, str]:
        env = dict(os.environ)
        # Without this Python's LIBDIR the stub can load the system's libpython against this
        # Python's stdlib and fail ('_thread.RLock' object has no attribute '_recursion_count').
        libs = [str(p) for p in (_bundled_libs_dir(), sysconfig.get_config_var("LIBDIR")) if p]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        # The stub takes its python (and so its site-packages) from PATH: this environment's.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

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
                raise UserError(
                    f"Triton server exited (code {returncode}) before it was ready: "
                    f"{summarize_log_errors(self.read_log())}{self._log_hint()}"
                )
            try:
                index = self.repository_index(timeout_s=2)
            except (urllib.error.URLError, OSError, ValueError):
                index = None  # endpoints come up only after the startup loads finished
            if index is not None:
                wanted = self.models or sorted({e["name"] for e in index})
                states = states_by_model(index)
                failed = {n: s for n, s in states.items() if s[0] == "UNAVAILABLE" and n in wanted}
                if failed:
                    raise UserError(load_failure_message(failed) + self._log_hint())
                if all(states.get(n, ("",))[0] == "READY" for n in wanted) and (
                    self._health_ready()
                ):
                    self._shm_regions |= shm_regions_of(group_members(self._process.pid))
                    # Made between launch and ready: this server's (or, rarely, a neighbour's).
                    self._python_env_dirs = set(glob.glob(_PYTHON_ENV_GLOB)) - (
                        self._python_envs_before
                    )
                    return
            if time.monotonic() > deadline:
                waiting = self.models or ["the server"]
                if index is not None:
                    waiting = [n for n in wanted if states.get(n, ("",))[0] != "READY"]
                raise UserError(
                    f"Triton server was not ready after {self.startup_timeout_s:g} s "
                    f"(waiting for: {', '.join(waiting) or 'health/ready'}){self._log_hint()}"
                )
            time.sleep(0.2)

    def _log_hint(self) -> str:
        return f" (server log: {self._user_log_path})" if self._user_log_path else ""
