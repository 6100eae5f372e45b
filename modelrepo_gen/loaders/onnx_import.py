"""A BERT-family model.onnx exported elsewhere, fitted to the `bert` component's tensors.

Its inputs and outputs are found by their usual names (case-insensitive): input_ids,
attention_mask, token_type_ids; the outputs the caller asks for by the names it accepts
(logits, start_logits / end_logits, last_hidden_state, ...: each head's are its task's), or the
pipeline's own names (INPUT_IDS, LOGITS, ...). The served copy is the same graph with those
tensors renamed to the pipeline's names (a model without token_type_ids gets an unused
TOKEN_TYPE_IDS input, so the wiring stays the same); everything else is refused by name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from modelrepo_gen.core.errors import UserError, first_line

INPUT_NAMES = {
    "INPUT_IDS": ("input_ids",),
    "ATTENTION_MASK": ("attention_mask", "input_mask"),
    "TOKEN_TYPE_IDS": ("token_type_ids", "segment_ids"),
}
OPTIONAL_INPUTS = ("TOKEN_TYPE_IDS",)
ONNX_INT64 = onnx.TensorProto.INT64


@dataclass(frozen=True)
class WantedOutput:
    name: str  # the pipeline's
    accepted: tuple[str, ...]  # the file's usual names for it (lower case)
    rank: int  # axes with the batch: per-token outputs have a token axis, logits end in classes


@dataclass(frozen=True)
class ImportedOnnx:
    path: Path
    inputs: dict[str, str]  # pipeline name -> the file's name (absent: the file lacks it)
    outputs: dict[str, str]
    widths: dict[str, int]  # pipeline output -> size of its last axis (classes, hidden)


def _match(names: list[str], accepted: tuple[str, ...], ours: str) -> str | None:
    for name in names:
        if name.lower() in accepted or name == ours:
            return name
    return None


@functools.lru_cache(maxsize=4)
def inspect_onnx(
    path: Path, head: str, wanted: tuple[WantedOutput, ...], stamp: float
) -> ImportedOnnx:
    """Map the file's tensors to the head's (`wanted`: its outputs); UserError naming what does
    not fit. `stamp` (the file's mtime) makes a changed file read again."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # not ONNX, truncated, or an operator onnxruntime lacks
        reason = first_line(error)
        raise UserError(f"{path} does not load in onnxruntime ({reason})") from None
    graph_inputs = {i.name: i for i in model.graph.input}
    inputs = {}
    for ours, accepted in INPUT_NAMES.items():
        found = _match(list(graph_inputs), accepted, ours)
        if found is None and ours not in OPTIONAL_INPUTS:
            raise UserError(
                f"{path} has no input {accepted[0]} (or {ours}); its inputs: "
                f"{', '.join(graph_inputs)}"
            )
        if found is not None:
            inputs[ours] = found
    unknown = sorted(set(graph_inputs) - set(inputs.values()))
    if unknown:
        raise UserError(f"{path} has input {unknown[0]}, which the pipeline does not send")
    for ours, name in inputs.items():
        tensor_type = graph_inputs[name].type.tensor_type
        if tensor_type.elem_type != ONNX_INT64 or len(tensor_type.shape.dim) != 2:
            raise UserError(
                f"{path} input {name} must be int64 [batch, tokens] ({ours}), got "
                f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type).lower()} of rank "
                f"{len(tensor_type.shape.dim)}"
            )
    produced = [o.name for o in model.graph.output]
    outputs = {}
    for output in wanted:
        found = _match(produced, output.accepted, output.name)
        if found is None:
            raise UserError(
                f"{path} has no output {' or '.join(output.accepted)} (or {output.name}) for the "
                f"{head} head; its outputs: {', '.join(produced)}"
            )
        outputs[output.name] = found
    ranks = {output.name: output.rank for output in wanted}
    probe = {name: np.ones((1, 3), dtype=np.int64) for name in inputs.values()}
    try:
        results = session.run(list(outputs.values()), probe)
    except Exception as error:
        raise UserError(f"{path} fails on a 3-token input ({str(error).splitlines()[0]})") from None
    widths = {}
    for (ours, name), result in zip(outputs.items(), results, strict=True):
        if result.ndim != ranks[ours] or result.dtype != np.float32:
            raise UserError(
                f"{path} output {name} must be float32 of rank {ranks[ours]} for {ours}, "
                f"got {result.dtype} of rank {result.ndim}"
            )
        widths[ours] = int(result.shape[-1])
    return ImportedOnnx(path, inputs, outputs, widths)


def served_model(imported: ImportedOnnx) -> onnx.ModelProto:
    """The same graph, its tensors renamed to the pipeline's names."""
    model = onnx.load(str(imported.path))
    renames = {
        theirs: ours for ours, theirs in (*imported.inputs.items(), *imported.outputs.items())
    }
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        value.name = renames.get(value.name, value.name)
    for ours in INPUT_NAMES:
        if ours not in imported.inputs:  # unused, so requests keep one shape of wiring
            model.graph.input.append(
                onnx.helper.make_tensor_value_info(ours, ONNX_INT64, ["batch", "tokens"])
            )
    onnx.checker.check_model(model)
    return model
