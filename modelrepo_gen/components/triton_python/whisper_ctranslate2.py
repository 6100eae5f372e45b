"""Triton python-backend model: audio -> token ids by Whisper in CTranslate2.

The onnxruntime generator's model (whisper_greedy.py) with another decoder: it calls the
features model for each window's log-mel, then CTranslate2's Whisper (the model files beside
this one) encodes and greedily decodes a batch of windows in one call, from the same prompt,
with the same suppressed tokens and the same answers (TOKENS, TOKEN_COUNT). Requests are
checked and windows cut exactly as there.
Settings from config.pbtxt `parameters`, beside whisper_greedy.py's:
  compute_type       CTranslate2's compute type (float32, int8, float16)
  device             cpu or cuda
  threads            threads of one decoding call; 0: one per core
  max_batch_windows  windows decoded together
"""

import os
from pathlib import Path

import numpy as np

try:  # beside model.py in a repository
    from model_kernel import model_settings
    from whisper_greedy import TritonPythonModel as GreedyModel
except ImportError:  # imported from the package
    from modelrepo_gen.components.triton_python.model_kernel import model_settings
    from modelrepo_gen.components.triton_python.whisper_greedy import (
        TritonPythonModel as GreedyModel,
    )


class TritonPythonModel(GreedyModel):
    def initialize(self, args):
        import ctranslate2

        super().initialize(args)
        _, params = model_settings(args)
        self.ctranslate2 = ctranslate2
        threads = int(params["threads"]) or os.cpu_count() or 1
        self.batch_windows = int(params["max_batch_windows"])
        self.whisper = ctranslate2.models.Whisper(
            str(Path(args["model_repository"]) / args["model_version"]),
            device=params["device"],
            compute_type=params["compute_type"],
            intra_threads=threads,
        )

    def _windows_per_batch(self):
        return self.batch_windows

    def _decode_windows(self, windows):
        features = np.ascontiguousarray(self._window_features(windows), dtype=np.float32)
        results = self.whisper.generate(
            self.ctranslate2.StorageView.from_array(features),
            [list(self.prompt)] * len(windows),
            beam_size=1,
            max_length=self.max_length,
            suppress_tokens=list(self.suppress),
            suppress_blank=bool(self.begin_suppress),
        )
        return [[t for t in result.sequences_ids[0] if t != self.eos] for result in results]
