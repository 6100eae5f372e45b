"""The bundled Triton server: start, readiness, load failures, clean stops, the serve CLI."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers.triton_fixtures import (
    live_processes_mentioning,
    shm_regions_mapped_by,
    write_broken_model,
    write_echo_model,
)

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.serve.server import TritonServer

# Run alone, after the tests that share the machine (make test): they check that no python
# backend scratch folder (/tmp/python_env_*) is left, which another test's server would add.
pytestmark = pytest.mark.serial

REPO_ROOT = Path(__file__).resolve().parents[1]
FREE_PORTS = {"http_port": 0, "grpc_port": 0, "metrics_port": 0}


def _echo_over_http(url: str, data: np.ndarray) -> np.ndarray:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url)
    try:
        request = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
        request.set_data_from_numpy(data)
        return client.infer("echo", [request]).as_numpy("OUTPUT0")
    finally:
        client.close()


def _assert_nothing_left(repository: Path, regions: set[str]) -> None:
    assert live_processes_mentioning(str(repository)) == []
    assert [r for r in regions if Path("/dev/shm", r).exists()] == []


def test_missing_repository_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        TritonServer(tmp_path / "nowhere", **FREE_PORTS).start()


def test_missing_binary_is_a_user_error(tmp_path: Path) -> None:
    write_echo_model(tmp_path / "repo")
    server = TritonServer(tmp_path / "repo", triton_root=tmp_path / "no_triton", **FREE_PORTS)
    with pytest.raises(UserError, match="binary is missing.*nvidia-pytriton"):
        server.start()


def test_unknown_model_name_is_a_user_error(tmp_path: Path) -> None:
    write_echo_model(tmp_path / "repo")
    with pytest.raises(UserError, match="model 'nope' is not in repository .*holds: echo"):
        TritonServer(tmp_path / "repo", models=["nope"], **FREE_PORTS).start()


@pytest.mark.server
def test_server_serves_then_stops_without_leftovers(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_echo_model(repository)
    with TritonServer(repository, **FREE_PORTS) as server:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", server.http_url)
        assert len({server.http_url, server.grpc_url, server.metrics_url}) == 3
        assert server.ready_models() == ["echo"]
        data = np.arange(6, dtype=np.float32).reshape(1, 6)
        np.testing.assert_array_equal(_echo_over_http(server.http_url, data), data)
        with urllib.request.urlopen(f"http://{server.metrics_url}/metrics", timeout=5) as r:
            assert b"nv_inference_request_success" in r.read()
        members = live_processes_mentioning(str(repository))  # the server and one stub
        assert len(members) == 2
        regions = shm_regions_mapped_by(members)
        assert regions
        work_dir = server.log_path.parent
        assert "successfully loaded 'echo'" in server.read_log()
    assert not server.is_running()
    assert not work_dir.exists()
    _assert_nothing_left(repository, regions)


@pytest.mark.server
def test_load_failure_names_the_model_and_reason(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_echo_model(repository)
    write_broken_model(repository)
    log = tmp_path / "server.log"
    with pytest.raises(UserError) as caught:
        TritonServer(repository, log_path=log, **FREE_PORTS).start()
    message = str(caught.value)
    assert "model 'broken' failed to load:" in message
    assert "ValueError: deliberate failure for the test" in message
    assert "echo" not in message.split("(server log")[0]  # the good model is not blamed
    assert "\n" not in message
    assert "deliberate failure" in log.read_text()  # the log given is kept
    _assert_nothing_left(repository, set())


@pytest.mark.server
def test_server_that_exits_early_quotes_its_log(tmp_path: Path) -> None:
    write_echo_model(tmp_path / "repo")
    server = TritonServer(tmp_path / "repo", extra_args=["--no-such-flag"], **FREE_PORTS)
    exited = r"exited \(exit code \d+\) before it was ready: .*no-such-flag"
    with pytest.raises(UserError, match=exited):
        server.start()
    assert not server.is_running()
    assert "no-such-flag" in server.read_log()  # kept after the work folder is gone


@pytest.mark.server
def test_stop_after_the_server_was_killed_leaves_nothing(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_echo_model(repository)
    python_envs = set(glob.glob("/tmp/python_env_*"))  # the python backend's scratch dirs
    server = TritonServer(repository, **FREE_PORTS)
    server.start()
    try:
        regions = shm_regions_mapped_by(live_processes_mentioning(str(repository)))
        assert regions
        os.kill(server.pid, signal.SIGKILL)  # no chance to unload models or clean /dev/shm
        time.sleep(0.2)
    finally:
        server.stop()
    _assert_nothing_left(repository, regions)
    assert set(glob.glob("/tmp/python_env_*")) <= python_envs


def _serve(repository: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelrepo_gen.serve", str(repository), *args,
         "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.server
def test_serve_cli_serves_selected_models_until_sigterm(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_echo_model(repository)
    write_broken_model(repository)  # not loaded: only --models are
    process = _serve(repository, "--models", "echo", "--log-file", str(tmp_path / "log.txt"))
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "ready models (1): echo" in output, output + process.stderr.read()
        http_url = re.search(r"HTTP:\s+(\S+)", output).group(1)
        assert re.search(r"gRPC:\s+127\.0\.0\.1:\d+", output)
        assert re.search(r"metrics:\s+127\.0\.0\.1:\d+/metrics", output)
        data = np.ones((1, 3), dtype=np.float32)
        np.testing.assert_array_equal(_echo_over_http(http_url, data), data)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in process.stderr.read()
    assert (tmp_path / "log.txt").stat().st_size > 0
    _assert_nothing_left(repository, set())


@pytest.mark.server
def test_serve_cli_reports_a_load_failure_in_one_line(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_broken_model(repository)
    process = _serve(repository)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.startswith("error: model 'broken' failed to load:"), stderr
    assert "deliberate failure" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    _assert_nothing_left(repository, set())
