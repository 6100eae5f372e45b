"""Which tensors of a BERT folder make the task head, and loading them into the network.

A folder holds a trained head when it has every tensor of the head's layers (named by its task
in triton_python/nlp_tasks.py, each `<layer>.weight` [classes, hidden] and `<layer>.bias`):
transformers' BertForQuestionAnswering / BertForTokenClassification /
BertForSequenceClassification folders as they are (their `classifier` is taken only from the
matching architecture), or the documented layouts of the joint heads, whose config.json names
each layer's classes (e.g. intent_id2label and slot_id2label; see README: BERT checkpoint
layouts). Otherwise the head is seeded at random.
"""

from __future__ import annotations

import torch

from modelrepo_gen.components.networks.bert import BertWithHead
from modelrepo_gen.components.triton_python.nlp_tasks import HEADS
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.loaders.hf_bert import ENCODER_PREFIX, BertFolder

POOLER = ("bert.pooler.dense.weight", "bert.pooler.dense.bias")


def head_tensor_names(head: str) -> list[str]:
    layers = HEADS[head].head_layers()
    names = [f"{layer}.{part}" for layer, _ in layers for part in ("weight", "bias")]
    return names + (list(POOLER) if HEADS[head].pooler else [])


def head_tensors(folder: BertFolder, head: str, where: str) -> dict[str, torch.Tensor] | None:
    """The head's tensors, or None when the folder holds no head for this task (seeded)."""
    names = head_tensor_names(head)
    wanted = HEADS[head].hf_classifier_of  # trained only where the folder's class says so
    if wanted and folder.architecture != wanted:
        return None
    layer_names = [n for n in names if not n.startswith(ENCODER_PREFIX)]
    present = [n for n in layer_names if n in folder.tensors]
    if not present and layer_names:
        return None
    missing = [n for n in names if n not in folder.tensors]
    if missing:
        raise UserError(
            f"{where}.path: {folder.weights} holds part of a {head} head but not "
            f"{', '.join(missing)}"
        )
    return {n: folder.tensors[n] for n in names}


def check_head_classes(
    tensors: dict[str, torch.Tensor], head: str, classes: tuple[int, ...], where: str, weights: str
) -> None:
    """Each head layer has one row per class; the label set decides how many classes."""
    for (layer, _), n in zip(HEADS[head].head_layers(), classes, strict=True):
        rows = tensors[f"{layer}.weight"].shape[0]
        if rows != n or tensors[f"{layer}.bias"].shape[0] != n:
            raise UserError(
                f"{where}: {weights} tensor {layer}.weight has {rows} classes but its label set "
                f"has {n}; pass the checkpoint's own labels or matching label files"
            )


def load_into(
    module: BertWithHead, folder: BertFolder, head_weights: dict | None, where: str
) -> None:
    """Encoder tensors from the folder (all required), head tensors where trained; the rest of
    the module keeps its seeded values. Shapes that differ are named."""
    state = module.state_dict()
    wanted = {n for n in state if n.startswith(ENCODER_PREFIX) and n not in POOLER}
    missing = sorted(wanted - set(folder.tensors))
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UserError(f"{where}.path: {folder.weights} lacks encoder tensors {shown}")
    chosen = {n: folder.tensors[n] for n in wanted}
    if head_weights:
        chosen.update(head_weights)
    elif HEADS[module.head].pooler and all(n in folder.tensors for n in POOLER):
        chosen.update({n: folder.tensors[n] for n in POOLER})  # the encoder's own pooler
    for name, tensor in sorted(chosen.items()):
        if tuple(tensor.shape) != tuple(state[name].shape):
            raise UserError(
                f"{where}.path: {folder.weights} tensor {name} has shape {list(tensor.shape)}, "
                f"config.json implies {list(state[name].shape)}"
            )
    if not next(module.parameters()).is_meta:  # a meta skeleton only checks shapes
        module.load_state_dict({n: t.float() for n, t in chosen.items()}, strict=False)
