"""The in-process pipeline a served NLP repository must agree with: the same tokenizer.json,
the same PyTorch network (same checkpoint or seeded weights) and the same answer logic.

Rebuilt from the composed config recorded in the repository's manifest. Each window runs
through the network on its own, unpadded, so agreeing with it also shows that the served
batching and padding change nothing. A network brought as an ONNX file (`model.onnx`) has no
PyTorch module: it runs in onnxruntime from the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from modelrepo_gen.components.triton_python.text_answers import (
    NETWORK_OUTPUTS,
    SEQUENCE_LEVEL,
    answer,
)
from modelrepo_gen.components.triton_python.text_windows import (
    Windows,
    load_tokenizer,
    tokenize_windows,
)
from modelrepo_gen.plan.resolver import resolve
from modelrepo_gen.repository.publish import MANIFEST

NETWORK_INPUTS = ("INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS")


def onnx_runner(path: Path, task: str):
    """A function running the ONNX network of a repository: input arrays -> the task's
    outputs, by name (an imported graph keeps its own output order)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = NETWORK_OUTPUTS[task]

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return session.run(outputs, dict(zip(NETWORK_INPUTS, arrays)))

    return run


class TextReference:
    def __init__(
        self, cfg: DictConfig, repository: Path | None = None, runtime: str = "pytorch"
    ) -> None:
        """`runtime`: "pytorch" runs the PyTorch module; "onnxruntime" the repository's ONNX
        network (always, for a network imported as ONNX)."""
        plan = resolve(cfg)
        units = {unit.name: unit for unit in plan.units}
        steps = [units[step.model_name] for step in plan.ensemble.steps]
        tokenizer, task = steps[0], steps[-1]
        network = units[task.calls["network"]]
        self.task = task.parameters["task"]
        self.labels = json.loads(task.parameters["labels"])
        self.max_answer_length = int(task.parameters.get("max_answer_length", "30"))
        self.allow_no_answer = task.parameters.get("allow_no_answer", "true") == "true"
        self.max_windows = int(tokenizer.parameters["max_windows"])
        self.tokenizer = load_tokenizer(
            str(tokenizer.files[tokenizer.parameters["tokenizer"]]),
            int(tokenizer.parameters["max_seq_length"]),
            int(tokenizer.parameters["doc_stride"]),
        )
        if network.export.imported is None and runtime == "pytorch":
            self.network = network.export.make_module().eval()
            self.run = self._run_module
        else:
            if repository is None:
                raise ValueError("an ONNX network runs from its repository")
            self.run = onnx_runner(repository / network.name / "1" / network.artifact, self.task)

    def _run_module(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            outputs = self.network(*[torch.from_numpy(a) for a in arrays])
        return [output.numpy() for output in outputs]

    @classmethod
    def from_repository(cls, repository: Path, runtime: str = "pytorch") -> TextReference:
        manifest = json.loads((Path(repository) / MANIFEST).read_text())
        return cls(OmegaConf.create(manifest["config"]), repository, runtime)

    def windows(self, text: str, question: str | None = None) -> Windows:
        return tokenize_windows(self.tokenizer, text, question, self.max_windows)

    def network_outputs(self, windows: Windows) -> dict[str, np.ndarray]:
        """The network's outputs for each window run alone, padded back to the windows' width."""
        names = NETWORK_OUTPUTS[self.task]
        rows: dict[str, list] = {name: [] for name in names}
        for row in range(windows.count):
            n = int(windows.attention_mask[row].sum())
            inputs = [
                np.ascontiguousarray(array[row : row + 1, :n])
                for array in (windows.input_ids, windows.attention_mask, windows.token_type_ids)
            ]
            for name, output in zip(names, self.run(inputs)):
                rows[name].append(output)
        width = windows.input_ids.shape[1]
        merged = {}
        for name, parts in rows.items():
            if name not in SEQUENCE_LEVEL:
                parts = [
                    np.pad(p, [(0, 0), (0, width - p.shape[1])] + [(0, 0)] * (p.ndim - 2))
                    for p in parts
                ]
            merged[name] = np.concatenate(parts)
        return merged

    def answer(self, text: str, question: str | None = None) -> dict:
        windows = self.windows(text, question)
        return answer(
            self.task,
            text,
            windows,
            self.network_outputs(windows),
            self.labels,
            self.max_answer_length,
            self.allow_no_answer,
        )
