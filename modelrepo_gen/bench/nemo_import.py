"""Benchmark of importing a full-size QuartzNet 15x5 .nemo file against the build's export
(--quick: the small QuartzNet-like test fixture).

The .nemo file (random weights) is made by NeMo itself when NEMO_PYTHON names a Python with
nemo_toolkit installed (tests/fixtures/nemo/make_fixtures.py --full-quartznet); otherwise this
benchmark writes an equivalent one without NeMo: the same tar layout, a model_config.yaml
with NeMo's sections, and this project's seeded QuartzNet 15x5 weights under NeMo's names (the
report says which). Import: extract and read the file, map its config, load, rename and check
the weights into the network. Export: the acoustic model's ONNX export and parity check in a
fresh build process (pipeline=asr_nemo).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from modelrepo_gen.bench.build import ROOT, BenchmarkError, build_process, compose_config
from modelrepo_gen.components.nemo_weights import (
    FEATURIZER_FILTERBANK,
    FEATURIZER_WINDOW,
    nemo_name,
)
from modelrepo_gen.components.networks.conv_asr import ConvASR, ConvBlockConfig
from modelrepo_gen.components.networks.mel_features import mel_filterbank

FIXTURE_SCRIPT = ROOT / "tests" / "fixtures" / "nemo" / "make_fixtures.py"
QUICK_FIXTURE = ROOT / "tests" / "fixtures" / "nemo" / "quartznet_like.nemo"
CHARACTERS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def _expanded_blocks() -> list[ConvBlockConfig]:
    """conf/model/quartznet_15x5.yaml's blocks, one per NeMo block (times expanded)."""
    model = compose_config(["pipeline=asr_quartznet"]).model
    blocks = []
    for block in model.blocks:
        spec = {k: v for k, v in block.items() if k != "times"}
        blocks += [ConvBlockConfig(**spec) for _ in range(block.get("times", 1))]
    return blocks


def _nemo_block(block: ConvBlockConfig) -> dict:
    return {
        "filters": block.filters,
        "repeat": block.repeat,
        "kernel": [block.kernel],
        "stride": [block.stride],
        "dilation": [block.dilation],
        "dropout": 0.0,
        "residual": block.residual,
        "separable": block.separable,
    }


def write_equivalent_nemo(path: Path, seed: int = 0) -> None:
    """A QuartzNet 15x5 .nemo laid out as NeMo's save_to writes one, without NeMo."""
    blocks = _expanded_blocks()
    config = {
        "target": "nemo.collections.asr.models.ctc_models.EncDecCTCModel",
        "sample_rate": 16000,
        "labels": CHARACTERS,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            "normalize": "per_feature",
            "window_size": 0.02,
            "window_stride": 0.01,
            "window": "hann",
            "features": 64,
            "n_fft": 512,
            "frame_splicing": 1,
            "dither": 1e-05,
            "pad_to": 16,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConvASREncoder",
            "feat_in": 64,
            "activation": "relu",
            "conv_mask": True,
            "jasper": [_nemo_block(b) for b in blocks],
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": blocks[-1].filters,
            "num_classes": len(CHARACTERS),
            "vocabulary": CHARACTERS,
        },
    }
    torch.manual_seed(seed)
    from modelrepo_gen.components.networks.conv_asr import ConvASRConfig

    module = ConvASR(ConvASRConfig(feat_in=64, blocks=blocks), len(CHARACTERS) + 1)
    state = {nemo_name(name, blocks): t for name, t in module.state_dict().items()}
    state[FEATURIZER_WINDOW] = torch.hann_window(320, periodic=False)
    state[FEATURIZER_FILTERBANK] = torch.from_numpy(mel_filterbank(16000, 512, 64, 0, 8000))[None]
    weights = io.BytesIO()
    torch.save(state, weights)
    with tarfile.open(path, "w") as archive:
        for name, data in (
            ("model_config.yaml", yaml.safe_dump(config).encode()),
            ("model_weights.ckpt", weights.getvalue()),
        ):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def make_full_quartznet(path: Path) -> str:
    """Write the .nemo file; returns how it was made, for the report."""
    nemo_python = os.environ.get("NEMO_PYTHON")
    if nemo_python:
        command = [nemo_python, str(FIXTURE_SCRIPT), "--full-quartznet", str(path)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0 or not path.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise BenchmarkError(f"NeMo ({nemo_python}) could not write the .nemo file:\n{tail}")
        return f"NeMo's save_to ({nemo_python}), random weights"
    write_equivalent_nemo(path)
    return "written by the benchmark without NeMo (NEMO_PYTHON unset): NeMo's layout and names"


def time_import(path: Path) -> dict:
    """Seconds of each import step, measured in this process on a file not read before."""
    from modelrepo_gen.components import COMPONENTS
    from modelrepo_gen.components.nemo_conv_asr import NemoConvAsrSettings
    from modelrepo_gen.config.nemo_resolver import nemo_part
    from modelrepo_gen.core.validation import typed
    from modelrepo_gen.loaders.nemo_archive import read_nemo

    started = time.perf_counter()
    read_nemo(path)
    extracted = time.perf_counter()
    parts = {p: nemo_part(p, str(path), {}) for p in ("featurizer", "acoustic_model", "decoder")}
    mapped = time.perf_counter()
    node = {k: v for k, v in parts["acoustic_model"].items() if k != "component"}
    settings = typed(NemoConvAsrSettings, node, "acoustic_model")
    COMPONENTS.get("nemo_conv_asr").make_module(settings, 0)
    loaded = time.perf_counter()
    return {
        "extract_s": extracted - started,
        "config_s": mapped - extracted,
        "weights_s": loaded - mapped,
        "import_s": loaded - started,
    }


def nemo_import_part(work: Path, log: Callable[[str], None], quick: bool = False) -> dict:
    """Full size: a QuartzNet 15x5 .nemo; quick: the small NeMo-made test fixture."""
    if quick:
        path, model = QUICK_FIXTURE, "QuartzNet-like test fixture"
        made_by = "made by NeMo 3.0 (tests/fixtures/nemo), random weights"
    else:
        path, model = work / "QuartzNet15x5-random.nemo", "QuartzNet 15x5"
        log("nemo import: writing a full-size QuartzNet 15x5 .nemo")
        made_by = make_full_quartznet(path)
    log(f"  {path.name}: {made_by}")
    imported = time_import(path)
    log(f"  import {imported['import_s']:.2f} s; building pipeline=asr_nemo (onnx fp32)")
    repository = work / "asr_nemo-quartznet15x5"
    built = build_process(["pipeline=asr_nemo", f"model.checkpoint={path}"], repository)
    assert built is not None
    wall, result = built
    seconds, units = result["seconds"], result["units"]
    export = seconds[f"export {units['acoustic_model']}"]
    return {
        "model": model,
        "made_by": made_by,
        "file_mib": path.stat().st_size / 2**20,
        **imported,
        "process_wall_s": wall,
        "build_total_s": seconds["total"],
        "acoustic_export_s": export,
        "acoustic_parity_s": seconds[f"parity {units['acoustic_model']}"],
        "features_export_s": seconds[f"export {units['feature_extractor']}"],
        "import_over_export": imported["import_s"] / export,
    }
