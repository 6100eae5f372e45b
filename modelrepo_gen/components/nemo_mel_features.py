"""Component `nemo_mel_features`: NeMo's log-mel front-end as a .nemo file configures it.

Settings are what pipeline asr_nemo reads from the file's `preprocessor` section (NeMo's own
names); the window and mel filterbank tensors come from the file's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from modelrepo_gen.components.audio_requests import audio_checks
from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.mel_features import INT32_MAX, MAX_SAMPLE_RATE, example_audio
from modelrepo_gen.components.nemo_weights import featurizer_tensors
from modelrepo_gen.components.networks.mel_features import mel_filterbank
from modelrepo_gen.components.networks.mel_features_checks import MAX_N_FFT
from modelrepo_gen.components.networks.nemo_mel_features import (
    NemoMelFeatureExtractor,
    NemoMelFeaturesConfig,
)
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.core.validation import check_number, require
from modelrepo_gen.loaders.nemo_archive import read_nemo

FP32, INT32 = "TYPE_FP32", "TYPE_INT32"
NORMALIZE = ("per_feature", "all_features", "none")
# NeMo's windows (torch's, symmetric) by the names its config uses.
WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}
FILTERBANK_TOLERANCE = 1e-5  # relative to the largest weight (librosa's and ours: ~1e-7)


@dataclass
class NemoMelFeatureSettings(NemoMelFeaturesConfig):
    checkpoint: str = ""  # the .nemo file holding the window and filterbank
    max_audio_seconds: float = 60.0  # longer requests are refused before any work
    # What the file sets that NeMo uses in training only (dither, augmentation): for the record.
    not_used_at_inference: dict[str, Any] = field(default_factory=dict)


def _max_samples(settings: NemoMelFeatureSettings) -> int:
    return int(settings.max_audio_seconds * settings.sample_rate)


class NemoMelFeatures(NetworkComponent):
    settings_schema = NemoMelFeatureSettings
    keeps_fp32 = True  # fp16 would overflow the power spectrum
    length_of = {"FEATURES": ["FEATURE_LENGTHS", 2]}

    def check(self, settings: NemoMelFeatureSettings, where: str) -> None:
        rate = settings.sample_rate
        check_number(f"{where}.sample_rate", rate, at_least=1, at_most=MAX_SAMPLE_RATE, unit="Hz")
        check_number(f"{where}.n_fft", settings.n_fft, at_least=2, at_most=MAX_N_FFT)
        check_number(
            f"{where}.n_window_size", settings.n_window_size, at_least=2, at_most=settings.n_fft
        )
        check_number(
            f"{where}.n_window_stride",
            settings.n_window_stride,
            at_least=1,
            at_most=settings.n_window_size,
        )
        check_number(f"{where}.features", settings.features, at_least=1)
        check_number(f"{where}.pad_to", settings.pad_to, at_least=0)
        check_number(f"{where}.log_zero_guard_value", settings.log_zero_guard_value, above=0)
        check_number(f"{where}.mag_power", settings.mag_power, above=0)
        require(
            settings.normalize in NORMALIZE,
            f"{where}.normalize must be one of {', '.join(NORMALIZE)}, got {settings.normalize!r}",
        )
        require(
            settings.log_zero_guard_type in ("add", "clamp"),
            f"{where}.log_zero_guard_type must be add or clamp, got "
            f"{settings.log_zero_guard_type!r}",
        )
        check_number(
            f"{where}.max_audio_seconds",
            settings.max_audio_seconds,
            above=0,
            at_most=INT32_MAX // rate,
            unit=f"seconds (NUM_SAMPLES is INT32 at {rate} Hz)",
        )
        require(
            settings.mel_norm in ("slaney", None),
            f"{where}.mel_norm must be slaney or null, got {settings.mel_norm!r}",
        )
        require(
            settings.window in WINDOWS,
            f"{where}.window must be one of {', '.join(WINDOWS)}, got {settings.window!r}",
        )
        self._tensors(settings, where)

    def _tensors(
        self, settings: NemoMelFeatureSettings, where: str = "featurizer"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The file's window and filterbank, checked to be what the settings give: a changed
        setting must not leave the file's tensors computing something else."""
        archive = read_nemo(settings.checkpoint)
        bins = settings.n_fft // 2 + 1
        window, filterbank = featurizer_tensors(
            archive, settings.n_window_size, settings.features, bins
        )
        expected = WINDOWS[settings.window](settings.n_window_size, periodic=False)
        require(
            bool(torch.allclose(window.float(), expected, atol=1e-6)),
            f"{where}.window: the .nemo file's window is not the symmetric {settings.window} "
            f"window of {settings.n_window_size} samples these settings give",
        )
        bank = mel_filterbank(
            settings.sample_rate,
            settings.n_fft,
            settings.features,
            settings.lowfreq,
            settings.highfreq,
            slaney_norm=settings.mel_norm == "slaney",
        )
        difference = float((filterbank[0].double() - torch.from_numpy(bank)).abs().max())
        require(
            difference <= FILTERBANK_TOLERANCE * float(bank.max()),
            f"{where}: the .nemo file's mel filterbank is not the one these settings give "
            f"({settings.features} bands, {settings.lowfreq:g}-{settings.highfreq:g} Hz, "
            f"mel_norm {settings.mel_norm}); the features come from the file's filterbank",
        )
        return window, filterbank

    def signature(self, settings: NemoMelFeatureSettings) -> Signature:
        return Signature(
            inputs=(
                TensorSpec("AUDIO_SIGNAL", FP32, (-1,), ragged=True),
                TensorSpec("NUM_SAMPLES", INT32, (1,)),
            ),
            outputs=(
                TensorSpec("FEATURES", FP32, (settings.features, -1)),
                TensorSpec("FEATURE_LENGTHS", INT32, (1,)),
            ),
            bounds={"FEATURES": _max_samples(settings) // settings.n_window_stride + 1},
        )

    def make_module(self, settings: NemoMelFeatureSettings, seed: int) -> torch.nn.Module:
        window, filterbank = self._tensors(settings)
        return NemoMelFeatureExtractor(settings, window, filterbank).eval()

    def example_inputs(
        self, settings: NemoMelFeatureSettings, batch: int, seconds: float, seed: int
    ) -> list[torch.Tensor]:
        return example_audio(batch, seconds, seed, settings.sample_rate)

    def request_checks(self, settings: NemoMelFeatureSettings, bounds: dict[str, int]) -> dict:
        # NeMo makes samples // stride frames: audio shorter than one stride has none.
        return audio_checks(_max_samples(settings), min_samples=settings.n_window_stride)

    def weights(self, settings: NemoMelFeatureSettings, where: str, seed: int) -> Weights:
        return Weights({"source": "nemo", "path": str(read_nemo(settings.checkpoint).path)})


COMPONENTS.register("nemo_mel_features")(NemoMelFeatures())
