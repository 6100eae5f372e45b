"""The four speech-synthesis networks built from a team's pipeline YAML (--config-dir) and served
by the real Triton server: Tacotron 2 -> WaveGlow and FastPitch -> HiFi-GAN in one ensemble.

Requests of different lengths sent concurrently get, each, what the PyTorch modules give for
that request alone: mel spectrograms, lengths, the stop flag and audio. Tacotron 2's checkpoint
has a gate that ends the requests at different steps, one of them cut at max_decoder_steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.served_requests import batch_counts, connect, infer, is_bad_request
from helpers.tts_fixtures import VOICE_COUNTS, VoicesBuild, module_of, symbol_batch

from modelrepo_gen.serve.server import TritonServer

pytestmark = pytest.mark.server

HOP = 256
MAX_STEPS = 40  # tacotron2_mini's max_decoder_steps
OUTPUTS = [
    "T2_MEL",
    "T2_MEL_LENGTH",
    "STOPPED",
    "WG_AUDIO",
    "WG_AUDIO_LENGTH",
    "FP_MEL",
    "FP_MEL_LENGTH",
    "HG_AUDIO",
    "HG_AUDIO_LENGTH",
]
PACES = [1.0, 0.8, 1.25, 2.0]


@pytest.fixture(scope="module")
def server(voices_build: VoicesBuild) -> Iterator[TritonServer]:
    with TritonServer(voices_build.repository, http_port=0, grpc_port=0, metrics_port=0) as triton:
        yield triton


def _requests() -> list[dict[str, tuple[np.ndarray, str]]]:
    ids, counts = symbol_batch(VOICE_COUNTS)
    generator = torch.Generator().manual_seed(7)
    requests = []
    for i, count in enumerate(VOICE_COUNTS):
        noise = 0.6 * torch.randn(1, MAX_STEPS * HOP, generator=generator)
        requests.append(
            {
                "SYMBOL_IDS": (ids[i : i + 1, :count].numpy(), "INT64"),
                "SYMBOL_COUNT": (counts[i : i + 1].numpy(), "INT32"),
                "PACE": (np.array([[PACES[i]]], dtype=np.float32), "FP32"),
                "NOISE": (noise.numpy(), "FP32"),
            }
        )
    return requests


def _pytorch(checkpoint: Path, request: dict) -> dict[str, np.ndarray]:
    """What the PyTorch modules give for this request alone (the build's seed is 0)."""
    tacotron2 = module_of("tacotron2_mini", checkpoint=str(checkpoint))
    waveglow, fastpitch, hifigan = (
        module_of(m) for m in ("waveglow_mini", "fastpitch_mini", "hifigan_mini")
    )
    ids, count, pace, noise = (torch.from_numpy(request[n][0]) for n in request)
    with torch.no_grad():
        t2_mel, t2_length, stopped = tacotron2(ids, count)
        wg_audio, wg_length = waveglow(t2_mel, t2_length, noise)
        fp_mel, fp_length = fastpitch(ids, count, pace)
        hg_audio, hg_length = hifigan(fp_mel, fp_length)
    tensors = [
        t2_mel,
        t2_length,
        stopped,
        wg_audio,
        wg_length,
        fp_mel,
        fp_length,
        hg_audio,
        hg_length,
    ]
    return {name: t.numpy() for name, t in zip(OUTPUTS, tensors, strict=True)}


def _served(server: TritonServer, request: dict) -> dict[str, np.ndarray]:
    module, client = connect(server, "http")
    try:
        return infer(module, client, "voices", request, OUTPUTS)
    finally:
        client.close()


def test_concurrent_requests_get_what_pytorch_gives_each_alone(server, voices_build) -> None:
    checkpoint, stops = voices_build.checkpoint, voices_build.stops
    requests = _requests()
    expected = [_pytorch(checkpoint, r) for r in requests]
    assert [bool(e["STOPPED"].item()) for e in expected] == [s is not None for s in stops]
    assert any(s is None for s in stops) and len({s for s in stops if s is not None}) >= 2
    # Two chains side by side: on the CPU target the steps run in one model (runs_in_parallel),
    # which takes the batches Triton forms and hands each step all of them.
    before = batch_counts(server, "voices_all_steps")
    batched = False
    for _ in range(3):  # batches form under load; a few rounds make that certain
        with ThreadPoolExecutor(max_workers=2 * len(requests)) as pool:
            served = list(pool.map(lambda r: _served(server, r), requests * 2))
        for got, want in zip(served, expected * 2, strict=True):
            for name in OUTPUTS:
                assert got[name].shape == want[name].shape, name
                if want[name].dtype.kind == "f":
                    np.testing.assert_allclose(
                        got[name], want[name], atol=1e-4, rtol=0, err_msg=name
                    )
                else:
                    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        after = batch_counts(server, "voices_all_steps")
        if any(size > 1 and count > before.get(size, 0) for size, count in after.items()):
            batched = True
            break
    assert batched, f"no execution of the voices ran more than one request: {after}"
    lengths = [e["T2_MEL_LENGTH"].item() for e in expected]
    assert len(set(lengths)) >= 2 and max(lengths) == MAX_STEPS
    assert [e["WG_AUDIO"].shape[1] for e in expected] == [n * HOP for n in lengths]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"PACE": np.array([[np.nan]], dtype=np.float32)}, "PACE contains NaN or infinite values"),
        ({"SYMBOL_COUNT": np.array([[99]], dtype=np.int32)}, "SYMBOL_COUNT must be between 1 and"),
        (
            {"SYMBOL_IDS": np.array([[5, 148, 7]], dtype=np.int64)},
            "SYMBOL_IDS must hold values from 0 to 147, got 5..148",
        ),
        # WaveGlow takes one noise value per audio sample: fewer made its run fail.
        (
            {"NOISE": np.zeros((1, 100), dtype=np.float32)},
            r"voices_waveglow: NOISE holds 100 values per item, fewer than MEL_LENGTH x \d+ = ",
        ),
    ],
    ids=["nan_pace", "count_beyond_ids", "symbol_out_of_range", "short_noise"],
)
def test_bad_request_is_refused_and_the_server_keeps_serving(server, change, message) -> None:
    import tritonclient.utils

    request = _requests()[2]
    if "SYMBOL_IDS" in change:
        request["SYMBOL_COUNT"] = (np.array([[3]], dtype=np.int32), "INT32")
    for name, array in change.items():
        request[name] = (array, request[name][1])
    with pytest.raises(tritonclient.utils.InferenceServerException, match=message) as failed:
        _served(server, request)
    # Through the ensemble, as the models answered: a bad request.
    assert is_bad_request(failed.value), failed.value
    assert _served(server, _requests()[3])["HG_AUDIO"].size > 0


def test_pace_is_clamped_to_the_configured_range(server) -> None:
    fastpitch = module_of("fastpitch_mini")
    request = _requests()[0]
    ids, count = (torch.from_numpy(request[n][0]) for n in ("SYMBOL_IDS", "SYMBOL_COUNT"))
    for sent, clamped in ((0.0, 0.25), (100.0, 4.0)):
        request["PACE"] = (np.array([[sent]], dtype=np.float32), "FP32")
        with torch.no_grad():
            expected = fastpitch(ids, count, torch.tensor([[clamped]]))[1].item()
        assert _served(server, request)["FP_MEL_LENGTH"].item() == expected
