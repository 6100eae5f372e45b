"""The FastPitch + HiFi-GAN .nemo pair the benchmark serves as pipeline=tts_nemo.

--quick: the NeMo-made test fixtures (small networks). Full size: FastPitch at NeMo's sizes
(384 wide, 6 + 6 layers, energy) and HiFi-GAN V1, random weights, made by NeMo itself when
NEMO_PYTHON names a Python with nemo_toolkit installed (tests/fixtures/nemo/
make_tts_fixtures.py --full); otherwise written without NeMo: the fixtures' own
model_config.yaml at full sizes and this project's seeded networks under NeMo's names (HiFi-GAN
weight-normed as NeMo saves it). The report says which.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from modelrepo_gen.bench.build import ROOT, BenchmarkError
from modelrepo_gen.components.nemo_tts_weights import fastpitch_nemo_name, hifigan_nemo_name
from modelrepo_gen.components.networks.fastpitch import FastPitch, FastPitchConfig
from modelrepo_gen.components.networks.hifigan import HifiGan, HifiGanConfig

FIXTURES = ROOT / "tests" / "fixtures" / "nemo"
SCRIPT = FIXTURES / "make_tts_fixtures.py"
QUICK_PAIR = (FIXTURES / "fastpitch_chars.nemo", FIXTURES / "hifigan_small.nemo")
FULL_NAMES = ("fastpitch_full.nemo", "hifigan_v1.nemo")
WIDTH, FILTERS = 384, 256
TRANSFORMER = {"n_layer": 6, "n_head": 1, "d_head": 64, "d_inner": 1536, "d_model": WIDTH}
GENERATOR = {  # HiFi-GAN V1
    "upsample_rates": [8, 8, 2, 2],
    "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}


def _archive_config(path: Path) -> dict:
    with tarfile.open(path) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("model_config.yaml"))
        return yaml.safe_load(archive.extractfile(member).read())


def _write_nemo(path: Path, config: dict, state: dict[str, torch.Tensor]) -> None:
    weights = io.BytesIO()
    torch.save(state, weights)
    files = {"model_config.yaml": yaml.safe_dump(config).encode(), "model_weights.ckpt": None}
    files["model_weights.ckpt"] = weights.getvalue()
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _fastpitch_config() -> dict:
    config = _archive_config(QUICK_PAIR[0])
    config["symbols_embedding_dim"] = WIDTH
    config["input_fft"] |= {**TRANSFORMER, "d_embed": WIDTH}
    config["output_fft"] |= TRANSFORMER
    for name in ("duration_predictor", "pitch_predictor", "energy_predictor"):
        config[name] |= {"input_size": WIDTH, "filter_size": FILTERS}
    config["alignment_module"]["n_text_channels"] = WIDTH
    return config


def _write_equivalent_pair(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """The full-size pair laid out as NeMo's save_to writes it, without NeMo."""
    acoustic, vocoder = folder / FULL_NAMES[0], folder / FULL_NAMES[1]
    torch.manual_seed(seed)
    sizes = FastPitchConfig(
        n_symbols=45,  # the fixture's EnglishCharsTokenizer
        symbols_embedding_dim=WIDTH,
        dur_predictor_filter_size=FILTERS,
        pitch_predictor_filter_size=FILTERS,
        energy_predictor_filter_size=FILTERS,
    )
    state = FastPitch(sizes).state_dict()
    _write_nemo(
        acoustic, _fastpitch_config(), {fastpitch_nemo_name(k): v for k, v in state.items()}
    )
    config = _archive_config(QUICK_PAIR[1])
    config["generator"] |= GENERATOR
    kernels = len(GENERATOR["resblock_kernel_sizes"])
    saved = {}
    for name, tensor in HifiGan(HifiGanConfig(**GENERATOR)).state_dict().items():
        nemo = hifigan_nemo_name(name, kernels)
        if name.endswith(".weight"):  # weight-normed over dim 0, as NeMo's generator saves it
            stem = nemo.removesuffix(".weight")
            saved[f"{stem}.weight_g"] = tensor.norm(dim=(1, 2), keepdim=True)
            saved[f"{stem}.weight_v"] = tensor
        else:
            saved[nemo] = tensor
    _write_nemo(vocoder, config, saved)
    return acoustic, vocoder


def nemo_tts_pair(work: Path, quick: bool, log: Callable[[str], None]) -> tuple[list[str], str]:
    """The overrides that name the pair, and what made it."""
    if quick:
        acoustic, vocoder = QUICK_PAIR
        made_by = "NeMo 3.0 (the small test fixtures)"
    else:
        folder = work / "nemo_tts_pair"
        folder.mkdir(parents=True, exist_ok=True)
        nemo_python = os.environ.get("NEMO_PYTHON")
        if nemo_python:
            log("tts_nemo: full-size pair made by NeMo")
            done = subprocess.run(
                [nemo_python, str(SCRIPT), "--full", str(folder)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise BenchmarkError(f"NeMo could not make the pair: {done.stderr[-300:]}")
            acoustic, vocoder = folder / FULL_NAMES[0], folder / FULL_NAMES[1]
            made_by = "NeMo (NEMO_PYTHON), full size"
        else:
            log("tts_nemo: full-size pair written without NeMo")
            acoustic, vocoder = _write_equivalent_pair(folder)
            made_by = "this benchmark without NeMo (set NEMO_PYTHON for NeMo's), full size"
    return [f"model.acoustic={acoustic}", f"model.vocoder={vocoder}"], made_by
