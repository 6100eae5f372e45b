"""Component `bert`: token ids -> a task head's logits (or the encoder's hidden states).

Inputs INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS [batch, tokens] (int64; rows padded with 0 ids
and 0 mask, which do not change the valid positions' outputs). Outputs: the head's task's
(triton_python/nlp_tasks.py), fp32, e.g. START_LOGITS, END_LOGITS [tokens] (question answering),
LOGITS [n] (sequence classification), TOKEN_LOGITS [tokens, n] (token classification),
HIDDEN_STATES [tokens, hidden] (feature extraction).
Per-token outputs come back as long as the request's INPUT_IDS, whatever it was batched with.
With `onnx` set, that file is served instead of an export (see loaders/onnx_import.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from modelrepo_gen.components.base import COMPONENTS, NetworkComponent, Weights
from modelrepo_gen.components.bert_head_weights import check_head_classes, head_tensors, load_into
from modelrepo_gen.components.bert_source import (
    BertSourceSettings,
    check_source,
    folder_config,
    label_names,
    loaded,
    onnx_file,
    tokenizer_json,
)
from modelrepo_gen.components.networks.bert import BertWithHead
from modelrepo_gen.components.triton_python.nlp_tasks import HEADS
from modelrepo_gen.core.build_plan import TensorSpec
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.signature import Signature
from modelrepo_gen.loaders.onnx_import import (
    ImportedOnnx,
    WantedOutput,
    inspect_onnx,
    served_model,
)

if TYPE_CHECKING:
    from transformers import BertConfig

FP32, INT64 = "TYPE_FP32", "TYPE_INT64"
INPUTS = ("INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS")


def head_classes(settings: BertSourceSettings, where: str = "model") -> tuple[int, ...]:
    """Output classes of each head layer: its labels' count, or for a layer whose columns are
    several outputs (question answering's start and end), their number."""
    labels = label_names(settings, where)
    return tuple(
        len(outputs) if len(outputs) > 1 else len(labels[outputs[0].name])
        for _, outputs in HEADS[settings.head].head_layers()
    )


def _config(settings: BertSourceSettings, where: str = "model") -> BertConfig:
    from transformers import BertConfig  # here: importing transformers takes seconds

    return BertConfig.from_dict(loaded(settings, where).config)


def _imported(settings: BertSourceSettings, where: str = "model") -> ImportedOnnx:
    path = onnx_file(settings, where)
    assert path is not None
    try:
        wanted = tuple(
            WantedOutput(output.name, output.onnx_names, output.rank)
            for output in HEADS[settings.head].network_outputs
        )
        return inspect_onnx(path, settings.head, wanted, path.stat().st_mtime)
    except UserError as error:
        raise UserError(f"{where}.onnx: {error}") from None


def token_limits(settings: BertSourceSettings) -> tuple[int, int]:
    """(vocabulary size, token types) the network accepts: config.json's, or for an imported
    model without one, its tokenizer's vocabulary and BERT's two segments (a model without a
    token type input ignores them)."""
    config = folder_config(settings)
    if config:
        return int(config["vocab_size"]), int(config.get("type_vocab_size", 2))
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_json(settings))).get_vocab_size(), 2


class Bert(NetworkComponent):
    settings_schema = BertSourceSettings
    example_length = "tokens"
    mask_input = "ATTENTION_MASK"
    sized_like = {
        output.name: ["INPUT_IDS", 1]
        for head in HEADS.values()
        for output in head.network_outputs
        if output.per_token
    }

    def check(self, settings: BertSourceSettings, where: str) -> None:
        if settings.onnx and settings.head in HEADS:
            _imported(settings, where)  # a file that does not fit is named before its labels
        check_source(settings, where)
        if settings.onnx:
            widths = _imported(settings, where).widths
            for name, labels in label_names(settings, where).items():
                if widths[name] != len(labels):
                    raise UserError(
                        f"{where}.onnx: output {_imported(settings, where).outputs[name]} has "
                        f"{widths[name]} classes but its label set has {len(labels)}; pass "
                        "matching label files"
                    )
            return
        folder = loaded(settings, where)
        head = head_tensors(folder, settings.head, where)
        if head:
            classes = head_classes(settings, where)
            check_head_classes(head, settings.head, classes, where, str(folder.weights))
        with torch.device("meta"):  # shapes only: names a tensor that does not fit, cheaply
            skeleton = BertWithHead(_config(settings, where), settings.head, head_classes(settings))
        load_into(skeleton, folder, head, where)

    def signature(self, settings: BertSourceSettings) -> Signature:
        if settings.onnx:
            widths = _imported(settings).widths
        else:
            labels = label_names(settings)
            widths = {name: len(names) for name, names in labels.items()}
            widths["HIDDEN_STATES"] = _config(settings).hidden_size
        outputs = []
        for output in HEADS[settings.head].network_outputs:
            width = (widths[output.name],) if output.vector else ()
            tokens = (-1,) if output.per_token else ()
            outputs.append(TensorSpec(output.name, FP32, tokens + width))
        return Signature(
            inputs=tuple(TensorSpec(name, INT64, (-1,), ragged=True) for name in INPUTS),
            outputs=tuple(outputs),
        )

    def make_module(self, settings: BertSourceSettings, seed: int) -> torch.nn.Module:
        if settings.onnx:
            raise UserError("an imported ONNX model has no PyTorch module")
        torch.manual_seed(seed)
        folder = loaded(settings)
        module = BertWithHead(_config(settings), settings.head, head_classes(settings))
        load_into(module, folder, head_tensors(folder, settings.head, "model"), "model")
        return module.eval()

    def imported(self, settings: BertSourceSettings) -> Callable[[Path], None] | None:
        if not settings.onnx:
            return None
        imported = _imported(settings)
        return lambda path: path.write_bytes(served_model(imported).SerializeToString())

    def example_inputs(
        self, settings: BertSourceSettings, batch: int, tokens: float, seed: int
    ) -> list[torch.Tensor]:
        """Random valid ids; row 0 is `tokens` long, the others shorter (zero-padded)."""
        length = int(tokens)
        if not 3 <= length <= settings.max_seq_length:
            raise UserError(
                f"parity_shapes: tokens must be between 3 and max_seq_length "
                f"({settings.max_seq_length}) for a BERT network, got {length}"
            )
        vocabulary, token_types = token_limits(settings)
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, vocabulary, (batch, length), generator=generator)
        lengths = torch.randint(3, length + 1, (batch,), generator=generator)
        lengths[0] = length
        positions = torch.arange(length).expand(batch, length)
        mask = (positions < lengths[:, None]).long()
        # A second segment in the later half of each row, where the model has one.
        second = (positions >= (lengths[:, None] // 2)) & (mask == 1)
        types = second.long() if token_types > 1 else torch.zeros_like(mask)
        return [ids * mask, mask, types]

    def request_checks(self, settings: BertSourceSettings, bounds: dict[str, int]) -> dict:
        vocabulary, token_types = token_limits(settings)
        return {
            "finite": ["INPUT_IDS"],  # refuses an empty request
            "max_length": {"INPUT_IDS": [settings.max_seq_length, 1]},
            "same_shape": {"ATTENTION_MASK": "INPUT_IDS", "TOKEN_TYPE_IDS": "INPUT_IDS"},
            "value_range": {
                "INPUT_IDS": [0, vocabulary - 1],
                "ATTENTION_MASK": [0, 1],
                "TOKEN_TYPE_IDS": [0, token_types - 1],
            },
        }

    def weights(self, settings: BertSourceSettings, where: str, seed: int) -> Weights:
        if settings.onnx:
            return Weights({"source": "onnx", "path": str(onnx_file(settings, where))})
        folder = loaded(settings, where)
        record = {"source": "huggingface", "path": str(folder.weights), "head": settings.head}
        if not HEADS[settings.head].head_layers() or head_tensors(folder, settings.head, where):
            return Weights(record)
        return Weights(
            {**record, "head_seed": seed},
            f"WARNING: {where}.path has no trained {settings.head} head: the encoder's weights "
            f"are real but the head of '{settings.head}' is seeded at random (seed={seed}). The "
            f"repository serves real plumbing but meaningless predictions; pass {where}.path="
            "FOLDER with a trained head (see README: BERT checkpoint layouts).",
        )


COMPONENTS.register("bert")(Bert())
