"""A BERT-family encoder with one task head, laid out like transformers' BertFor* classes.

State-dict names are the checkpoint's own: the encoder under `bert.`, the head's Linear layers
by the names its task gives them (triton_python/nlp_tasks.py: qa_outputs, classifier,
intent_classifier and slot_classifier, ...), so a transformers folder loads as it is. A layer
reads every token's hidden state or, for an output with one row per text, the [CLS] state (or
the pooler's, for tasks that read it, as BertForSequenceClassification); the feature_extraction
head has no layer and gives the last hidden states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from modelrepo_gen.components.triton_python.nlp_tasks import HEADS

if TYPE_CHECKING:
    from transformers import BertConfig


class BertWithHead(torch.nn.Module):
    """(input_ids, attention_mask, token_type_ids) -> the head's logits, fp32.

    `classes`: output classes of each head layer, in the task's order (a layer whose columns
    are several outputs has one class per output: 2 for qa_outputs).
    """

    # transformers' modules do not script; their trace keeps batch and length dynamic.
    export_by_tracing = True

    def __init__(self, config: BertConfig, head: str, classes: tuple[int, ...]) -> None:
        from transformers import BertModel  # here: importing transformers takes seconds

        super().__init__()
        config._attn_implementation = "eager"  # exports the same way with both exporters
        self.head = head
        self.layers = HEADS[head].head_layers()
        self.bert = BertModel(config, add_pooling_layer=HEADS[head].pooler)
        for (name, _), n in zip(self.layers, classes, strict=True):
            self.add_module(name, torch.nn.Linear(config.hidden_size, n))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        encoded = self.bert(
            input_ids=input_ids,
            attention_mask=self._additive_mask(attention_mask),
            token_type_ids=token_type_ids,
        )
        hidden = encoded.last_hidden_state
        if not self.layers:
            return (hidden,)
        pooled = encoded.pooler_output if HEADS[self.head].pooler else hidden[:, 0]
        results: list[torch.Tensor] = []
        for name, outputs in self.layers:
            logits = getattr(self, name)(hidden if outputs[0].per_token else pooled)
            if len(outputs) == 1:
                results.append(logits)
            else:  # one output per column
                results.extend(column.squeeze(-1) for column in logits.split(1, dim=-1))
        return tuple(results)

    def _additive_mask(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """The 0/1 mask as the [batch, 1, 1, length] scores bias eager attention adds,
        made from the mask itself: transformers' own mask builder makes it with the device of
        the tracing machine, which a trace keeps (a network traced on the CPU then fails on a
        GPU)."""
        dtype = self.bert.embeddings.word_embeddings.weight.dtype
        keep = attention_mask[:, None, None, :].to(dtype)
        return (1.0 - keep) * torch.finfo(dtype).min
