"""The GPU check of a built target=gpu repository (python -m modelrepo_gen.bench.gpu_networks):
it refuses plainly where CUDA is missing, and its inputs, comparison and tables hold on a tiny
QuartzNet repository run CPU against CPU (--device cpu, the dry run any machine can do)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.project import compose_config

from modelrepo_gen.bench import gpu_networks
from modelrepo_gen.bench.gpu_networks import Network, Tensor

ACOUSTIC, FEATURES = "asr_quartznet_acoustic_model", "asr_quartznet_feature_extractor"
QUICK = ["--device", "cpu", "--seconds", "0.5", "--repeats", "1", "--budget", "0"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelrepo_gen.assembly.run import build_repository

    repo = tmp_path_factory.mktemp("gpu_networks") / "repo"
    overrides = ["model=quartznet_mini", "target=gpu", "backend=torchscript"]
    build_repository(compose_config(overrides), repo)
    return repo


def test_refuses_in_one_line_where_cuda_is_missing(tmp_path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine with one
    done = subprocess.run(
        [sys.executable, "-m", "modelrepo_gen.bench.gpu_networks", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: CUDA is not available (no NVIDIA GPU is visible, or this torch is built without "
        "CUDA): nothing to run on"
    ]


def test_inputs_follow_the_declared_tensors_and_lengths(repository) -> None:
    networks, skipped, manifest = gpu_networks.read_repository(repository)
    assert [n.name for n in networks] == [ACOUSTIC, FEATURES] and skipped == []
    acoustic, features = networks
    assert acoustic.path == repository / ACOUSTIC / "1" / "model.pt"
    assert (acoustic.max_batch_size, acoustic.precision, acoustic.tolerance) == (8, "fp32", 1e-4)
    config = manifest["config"]

    audio, samples = gpu_networks.make_inputs(features, config, 3, 2.0, 9, 100, seed=0)
    assert audio.shape == (3, 32000) and audio.dtype == np.float32  # 2 s at 16 kHz
    assert samples.dtype == np.int32 and samples[0, 0] == 32000
    assert all(16000 <= n <= 32000 and not audio[i, n:].any() for i, n in enumerate(samples[:, 0]))

    feats, frames = gpu_networks.make_inputs(acoustic, config, 3, 2.0, 9, 100, seed=0)
    assert feats.shape == (3, 64, 200) and frames[:, 0].tolist()[0] == 200  # 10 ms frames
    timed = gpu_networks.make_inputs(acoustic, config, 8, 2.0, 9, 100, seed=0, ragged=False)
    assert (timed[1] == 200).all()
    # What they make runs, and the answers have the declared dims.
    module = torch.jit.load(str(acoustic.path))
    logprobs, lengths = gpu_networks.run(module, [feats, frames], "cpu")
    assert logprobs.shape[0] == 3 and logprobs.shape[2] == 29 and lengths.shape == (3, 1)


def test_errors_count_only_each_rows_valid_frames() -> None:
    out = [Tensor("LOGPROBS__0", np.float32, (-1, 2)), Tensor("LENGTHS__1", np.int32, (1,))]
    net = Network("r", "m", 8, [], out, Path("model.pt"), "fp32", 1e-4, False)
    reference = [np.zeros((2, 4, 2), np.float32), np.array([[4], [2]], np.int32)]
    padding = reference[0].copy()
    padding[1, 2:] = 7.0  # past row 1's two frames: not an answer
    assert gpu_networks.max_error(net, reference, [padding, reference[1]])[1:] == (0.0, 0.0)
    inside = padding.copy()
    inside[1, 1, 0] = 0.5
    error = gpu_networks.max_error(net, reference, [inside, reference[1]])
    assert error == ("LOGPROBS__0", 0.5, 0.5)
    wrong_length = [reference[0], np.array([[4], [3]], np.int32)]
    error = gpu_networks.max_error(net, reference, wrong_length)
    assert error == ("LENGTHS__1", 1.0, 0.25)  # relative to the largest length, 4


def test_dry_run_writes_both_tables(repository, tmp_path) -> None:
    output = tmp_path / "gpu_networks.md"
    assert gpu_networks.main([str(repository), *QUICK, "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("Networks on CPU (dry run) against the CPU")
    for name in (ACOUSTIC, FEATURES):
        assert f"| repo | {name} | fp32 | CPU fp32 | 4 |" in text  # 2 parity + 2 timed shapes
        (parity,) = [row for row in text.splitlines() if f"| {name} | fp32 | CPU" in row]
        assert parity.endswith("| 0.00e+00 | 0.00e+00 | 0.0001 | yes |")
        for batch in (1, 8):
            assert f"| repo | {name} | fp32 | {batch} | 0.5 s |" in text


def test_a_network_that_does_not_load_fails_the_run_and_says_why(repository, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(repository, broken)
    (broken / ACOUSTIC / "1" / "model.pt").write_bytes(b"not a TorchScript archive")
    output = tmp_path / "gpu_networks.md"
    assert gpu_networks.main([str(broken), *QUICK, "--output", str(output)]) == 1
    text = output.read_text()
    assert f"| broken | {ACOUSTIC} | fp32 | failed: " in text
    assert f"| broken | {FEATURES} | fp32 | CPU fp32 | 4 |" in text  # the others still measured
