"""Serving survives what used to kill or stall it: huge form-encoded bodies, crashes of
tritonserver (restarted by ``serve``), a kill -9 of ``serve``, bad configs and bad ports."""

from __future__ import annotations

import glob
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.triton_fixtures import (
    ASR_DECODER,
    ASR_ENSEMBLE,
    encode_text,
    live_processes_mentioning,
    shm_regions_mapped_by,
    write_echo_model,
    write_python_model,
    write_standin_asr,
)

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.server import TritonServer

# Run alone, after the tests that share the machine (make test): they check that no python
# backend scratch folder (/tmp/python_env_*) is left, which another test's server would add.
pytestmark = pytest.mark.serial

REPO_ROOT = Path(__file__).resolve().parents[1]
FREE_PORTS = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}

# Echoes its input; a negative first value makes it take 3 s (a request kept in flight).
SLOW_ECHO_PY = """
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if data.size and data.flat[0] < 0:
                time.sleep(3)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", data)]))
        return responses
"""

# Kills its own tritonserver while loading: a crash during startup.
KILLS_SERVER_PY = """
import os
import signal


class TritonPythonModel:
    def initialize(self, args):
        os.kill(os.getppid(), signal.SIGKILL)

    def execute(self, requests):
        return []
"""

TENSOR = '{{ name: "{}" data_type: TYPE_FP32 dims: [ -1 ] }}'


def _echo(url: str, data: np.ndarray, timeout_s: float = 30) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url, network_timeout=timeout_s)
    try:
        request = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
        request.set_data_from_numpy(data)
        return client.infer("echo", [request]).as_numpy("OUTPUT0")
    finally:
        client.close()


def _python_envs() -> set[str]:
    return set(glob.glob("/tmp/python_env_*"))


def _work_dirs() -> set[str]:
    return set(glob.glob("/tmp/modelrepo_gen_triton_*"))


def _tritonserver_pid(repository: Path) -> int:
    with_repo = live_processes_mentioning(str(repository))
    servers = [
        p for p in with_repo if b"bin/tritonserver" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert len(servers) == 1, with_repo
    return servers[0]


def _wait_for(condition, timeout_s: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


class _Lines:
    """Lines of a subprocess stream, read in a thread, waited for with a timeout."""

    def __init__(self, stream) -> None:  # noqa: ANN001
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:  # noqa: ANN001
        for line in stream:
            self._queue.put(line)

    def wait_for(self, pattern: str, timeout_s: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen}") from None
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def everything(self) -> list[str]:
        """Every line so far, once the stream has ended."""
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return self.seen


def _serve(repository: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelrepo_gen.serve", str(repository),
         "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("echo") / "repo"
    write_echo_model(repository)
    with TritonServer(repository, **FREE_PORTS) as server:
        yield server


@pytest.mark.server
@pytest.mark.parametrize("megabytes", [5, 100])
def test_large_form_encoded_post_does_not_kill_the_server(
    echo_server: TritonServer, megabytes: int
) -> None:
    # urllib (like curl) labels a body application/x-www-form-urlencoded unless told otherwise;
    # tritonserver 2.51 copies such a body onto its stack and died above about 4 MB.
    body = os.urandom(megabytes * 1_000_000)
    request = urllib.request.Request(
        f"http://{echo_server.http_url}/v2/models/echo/infer", data=body, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code in (400, 500)
    assert echo_server.is_running()
    data = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_array_equal(_echo(echo_server.http_url, data), data)


def _write_unparsable_config(repository: Path, name: str = "bad") -> None:
    write_echo_model(repository, name)
    config = repository / name / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size", "max_batchsize"))


@pytest.mark.server
@pytest.mark.parametrize("models", [None, ["bad"]], ids=["all", "named"])
def test_config_parse_error_fails_fast_with_the_reason(
    tmp_path: Path, models: list[str] | None
) -> None:
    repository = tmp_path / "repo"
    write_echo_model(repository)
    _write_unparsable_config(repository)
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        TritonServer(repository, startup_timeout_s=60, models=models, **FREE_PORTS).start()
    assert time.monotonic() - started < 20
    message = str(caught.value)
    assert message.startswith("model 'bad' failed to load: failed to read text proto"), message
    assert 'no field named "max_batchsize"' in message and "\n" not in message
    assert live_processes_mentioning(str(repository)) == []


@pytest.mark.parametrize("flag, value", [("--http-port", "70000"), ("--grpc-port", "-1")])
def test_serve_refuses_out_of_range_ports_in_one_line(
    tmp_path: Path, flag: str, value: str
) -> None:
    write_echo_model(tmp_path / "repo")
    process = _serve(tmp_path / "repo", flag, value)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert (
        stderr
        == f"error: argument {flag}: {value} is out of range: use 1..65535, or 0 for a free port"
        " (see --help)\n"
    )
    with pytest.raises(UserError, match="http port 70000 is out of range"):
        TritonServer(tmp_path / "repo", http_port=70000).start()


@pytest.mark.server
def test_serve_restarts_a_crashed_server_on_the_same_port_then_gives_up(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_python_model(
        repository, "echo", SLOW_ECHO_PY, [TENSOR.format("INPUT0")], [TENSOR.format("OUTPUT0")]
    )
    envs_before = _python_envs()
    log = tmp_path / "server.log"
    process = _serve(repository, "--max-restarts", "2", "--log-file", str(log))
    stdout, stderr = _Lines(process.stdout), _Lines(process.stderr)
    try:
        http_url = stdout.wait_for(r"HTTP:\s+(\S+)").group(1)
        data = np.ones((1, 3), dtype=np.float32)
        for restart, (sig, backoff) in enumerate([(signal.SIGSEGV, 1), (signal.SIGKILL, 2)], 1):
            pid = _tritonserver_pid(repository)
            regions = shm_regions_mapped_by(live_processes_mentioning(str(repository)))
            in_flight: list[BaseException | None] = []
            slow = threading.Thread(target=_echo_into, args=(http_url, -data, in_flight))
            slow.start()
            time.sleep(1)  # the slow request is inside the model now
            os.kill(pid, sig)
            died = stderr.wait_for(r"tritonserver died.*")
            assert died.group(0) == f"tritonserver died ({sig.name}); restarting in {backoff} s"
            slow.join(30)
            assert in_flight and isinstance(in_flight[0], Exception)  # an error, not a hang
            stderr.wait_for(
                rf"tritonserver restarted on {re.escape(http_url)} \(restarts: {restart}\)"
            )
            np.testing.assert_array_equal(_echo(http_url, data), data)
            assert [r for r in regions if Path("/dev/shm", r).exists()] == []
            assert _tritonserver_pid(repository) != pid
        os.kill(_tritonserver_pid(repository), signal.SIGSEGV)  # a third crash: too many
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
    process.wait()
    time.sleep(0.5)  # the reader threads catch up with the ended streams
    errors = [line for line in stderr.everything() if line.startswith("error")]
    assert errors == [
        "error: tritonserver died (SIGSEGV); giving up after 3 crashes within 300 s (restarts: 2)\n"
    ]
    assert "Triton server stopped (restarts: 2)\n" in stdout.everything()
    assert not any("Traceback" in line for line in stderr.everything())
    assert live_processes_mentioning(str(repository)) == []
    assert _python_envs() <= envs_before
    assert log.read_text().count("successfully loaded 'echo'") == 3  # every launch's log kept


def _echo_into(url: str, data: np.ndarray, outcome: list[BaseException | None]) -> None:
    try:
        _echo(url, data)
        outcome.append(None)
    except Exception as error:  # noqa: BLE001
        outcome.append(error)


@pytest.mark.server
def test_kill_9_of_serve_leaves_nothing_behind(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_echo_model(repository)
    envs_before = _python_envs()
    process = _serve(repository)
    try:
        log_path = Path(_Lines(process.stdout).wait_for(r"log:\s+(\S+)").group(1))
        work_dir = log_path.parent
        assert work_dir.is_dir()
        regions = shm_regions_mapped_by(live_processes_mentioning(str(repository)))
        assert regions
        process.kill()  # SIGKILL: serve runs no cleanup of its own
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert _wait_for(lambda: not work_dir.exists(), timeout_s=30), "work folder left behind"
    assert live_processes_mentioning(str(repository)) == []
    assert [r for r in regions if Path("/dev/shm", r).exists()] == []
    assert _python_envs() <= envs_before


@pytest.mark.server
def test_crash_during_startup_leaves_nothing_behind(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_python_model(
        repository, "killer", KILLS_SERVER_PY, [TENSOR.format("INPUT0")], [TENSOR.format("OUTPUT0")]
    )
    envs_before, work_dirs_before = _python_envs(), _work_dirs()
    server = TritonServer(repository, **FREE_PORTS)
    crashed = r"exited \(SIGKILL\) before it was ready: last log line: .*killer"
    with pytest.raises(UserError, match=crashed):
        server.start()
    assert live_processes_mentioning(str(repository)) == []
    assert _python_envs() <= envs_before
    assert _work_dirs() <= work_dirs_before


def _health_ready(http_url: str) -> bool:
    try:
        urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=5)
        return True
    except (urllib.error.URLError, OSError):  # 400: not ready
        return False


@pytest.mark.server
def test_serve_reloads_a_model_whose_python_worker_died(tmp_path: Path) -> None:
    """kill -9 of a python worker (as the kernel does to one out of memory) under load: serve
    reloads that model, health/ready says not ready meanwhile, no answer is ever wrong."""
    repository = tmp_path / "repo"
    write_standin_asr(repository)
    process = _serve(repository, "--max-restarts", "3")
    stdout, stderr = _Lines(process.stdout), _Lines(process.stderr)
    try:
        http_url = stdout.wait_for(r"HTTP:\s+(\S+)").group(1)
        outcomes: list[str] = []
        stop = threading.Event()

        def load(client_id: int) -> None:
            import tritonclient.http as httpclient

            client = httpclient.InferenceServerClient(http_url)
            count = 0
            while not stop.is_set():
                text = f"client {client_id} request {count}"
                count += 1
                audio = encode_text(text).reshape(1, -1)
                inputs = [httpclient.InferInput("AUDIO_SIGNAL", list(audio.shape), "FP32"),
                          httpclient.InferInput("NUM_SAMPLES", [1, 1], "INT32")]  # fmt: skip
                inputs[0].set_data_from_numpy(audio)
                inputs[1].set_data_from_numpy(np.array([[audio.size]], dtype=np.int32))
                try:
                    got = client.infer(ASR_ENSEMBLE, inputs).as_numpy("TRANSCRIPT")[0, 0]
                    outcomes.append("right" if got.decode() == text else f"WRONG {got!r}")
                except Exception:  # noqa: BLE001 - an error is allowed, a wrong answer is not
                    outcomes.append("error")

        senders = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(3)]
        for sender in senders:
            sender.start()
        time.sleep(1)
        workers = TritonServerWorkers.of(repository, ASR_DECODER)
        assert len(workers) == 2  # two instances
        os.kill(workers[0], signal.SIGKILL)
        died = stderr.wait_for(r"python worker .*")
        assert re.fullmatch(
            rf"python worker {ASR_DECODER}_0_[01] of model '{ASR_DECODER}' died; "
            r"reloading it in 1 s\n",
            died.group(0) + "\n",
        ), died.group(0)
        assert not _health_ready(http_url)  # not ready while the model is down
        stderr.wait_for(rf"model '{ASR_DECODER}' reloaded and ready \(restarts: 1\)")
        assert _wait_for(lambda: _health_ready(http_url), timeout_s=10)
        right_before = outcomes.count("right")
        assert _wait_for(lambda: outcomes.count("right") > right_before + 20, timeout_s=30)
        stop.set()
        for sender in senders:
            sender.join(30)
        assert [o for o in outcomes if o.startswith("WRONG")] == []
        assert set(TritonServerWorkers.of(repository, ASR_DECODER)).isdisjoint(workers)

        # A model unloaded on purpose (the repository API) is left unloaded.
        urllib.request.urlopen(
            urllib.request.Request(
                f"http://{http_url}/v2/repository/models/{ASR_DECODER}/unload", method="POST"
            ),
            timeout=30,
        )
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.5)
    assert [line for line in stderr.everything() if "died" in line] == [died.group(0) + "\n"]
    assert "Triton server stopped (restarts: 1)\n" in stdout.everything()
    assert live_processes_mentioning(str(repository)) == []


class TritonServerWorkers:
    @staticmethod
    def of(repository: Path, model: str) -> list[int]:
        """Pids of the live python workers of `model` served from `repository`."""
        marker = f"{repository}/{model}/1/model.py"
        return [
            pid
            for pid in live_processes_mentioning(marker)
            if b"triton_python_backend_stub" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]


# Runs a program for every request (as the Piper front-end runs espeak-ng): forked children
# bear the worker's command line until they exec.
FORKS_PY = """
import subprocess

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            for _ in range(5):
                subprocess.run(["true"], check=True)
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", data)]))
        return responses
"""


@pytest.mark.server
def test_a_worker_running_programs_is_not_taken_for_a_dead_one(tmp_path: Path) -> None:
    """The probe's 4000-digit Piper text ran espeak-ng many times: each fork looked like a new
    worker that died a moment later, and the front-end was reloaded for nothing."""
    from modelrepo_gen.serve.supervisor import Supervisor

    repository = tmp_path / "repo"
    write_python_model(
        repository, "echo", FORKS_PY, [TENSOR.format("INPUT0")], [TENSOR.format("OUTPUT0")]
    )
    reports: list[str] = []
    with TritonServer(repository, **FREE_PORTS) as server:
        stop = threading.Event()
        watcher = threading.Thread(
            target=Supervisor(server, report=reports.append).watch, args=(stop,), daemon=True
        )
        watcher.start()
        data = np.ones((1, 3), dtype=np.float32)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            np.testing.assert_array_equal(_echo(server.http_url, data), data)
        stop.set()
        watcher.join(10)
    assert reports == []
