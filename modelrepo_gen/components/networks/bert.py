"""A BERT-family encoder with one task head, laid out like transformers' BertFor* classes.

State-dict names are the checkpoint's own: the encoder under `bert.`, the head's tensors by the
names below, so a transformers folder loads as it is:
  question_answering       qa_outputs            [2, hidden]   (BertForQuestionAnswering)
  token_classification     classifier            [n, hidden]   (BertForTokenClassification)
  sequence_classification  bert.pooler, classifier [n, hidden] (BertForSequenceClassification)
  intent_slot              intent_classifier ([CLS] state), slot_classifier (every token)
  punctuation              punct_classifier, capit_classifier (every token)
  feature_extraction       no head: the last hidden states
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

# head -> (Linear layer name, whether it reads every token (True) or one vector per row)
HEAD_LAYERS: dict[str, tuple[tuple[str, bool], ...]] = {
    "question_answering": (("qa_outputs", True),),
    "token_classification": (("classifier", True),),
    "sequence_classification": (("classifier", False),),
    "intent_slot": (("intent_classifier", False), ("slot_classifier", True)),
    "punctuation": (("punct_classifier", True), ("capit_classifier", True)),
    "feature_extraction": (),
}


def uses_pooler(head: str) -> bool:
    """Only sequence classification reads the pooler (tanh of a dense layer on [CLS]), as HF."""
    return head == "sequence_classification"


class BertWithHead(torch.nn.Module):
    """(input_ids, attention_mask, token_type_ids) -> the head's logits, fp32.

    `classes`: output classes of each head layer, in HEAD_LAYERS order (2 for qa_outputs).
    """

    # transformers' modules do not script; their trace keeps batch and length dynamic.
    export_by_tracing = True

    def __init__(self, config: BertConfig, head: str, classes: tuple[int, ...]) -> None:
        super().__init__()
        config._attn_implementation = "eager"  # exports the same way with both exporters
        self.head = head
        self.bert = BertModel(config, add_pooling_layer=uses_pooler(head))
        for (name, _), n in zip(HEAD_LAYERS[head], classes, strict=True):
            self.add_module(name, torch.nn.Linear(config.hidden_size, n))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        encoded = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        hidden = encoded.last_hidden_state
        if self.head == "feature_extraction":
            return (hidden,)
        if self.head == "question_answering":
            start, end = self.qa_outputs(hidden).split(1, dim=-1)
            return start.squeeze(-1), end.squeeze(-1)
        pooled = encoded.pooler_output if uses_pooler(self.head) else hidden[:, 0]
        return tuple(
            getattr(self, name)(hidden if per_token else pooled)
            for name, per_token in HEAD_LAYERS[self.head]
        )
