"""The class names of a BERT head's outputs: a label file, the checkpoint's id2label, or the
project's default file for a seeded head, in that order."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from modelrepo_gen.core.errors import UserError


class LabeledOutput(NamedTuple):
    output: str  # the network's logits tensor
    setting: str  # the label-file setting that wins
    seeded_setting: str  # the label file of a seeded head
    config_field: str  # the checkpoint's config.json field mapping class index -> name


LABELED_OUTPUTS: dict[str, tuple[LabeledOutput, ...]] = {
    "token_classification": (LabeledOutput("TOKEN_LOGITS", "labels", "seeded_labels", "id2label"),),
    "sequence_classification": (LabeledOutput("LOGITS", "labels", "seeded_labels", "id2label"),),
    "intent_slot": (
        LabeledOutput("INTENT_LOGITS", "labels", "seeded_labels", "intent_id2label"),
        LabeledOutput("SLOT_LOGITS", "slot_labels", "seeded_slot_labels", "slot_id2label"),
    ),
    "punctuation": (
        LabeledOutput("PUNCT_LOGITS", "labels", "seeded_labels", "punct_id2label"),
        LabeledOutput("CAPIT_LOGITS", "capit_labels", "seeded_capit_labels", "capit_id2label"),
    ),
}


def read_label_file(path: str, where: str) -> list[str]:
    """One label per line; trailing blank lines are ignored, any other blank line is refused."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{where}: cannot read label file {file} ({error})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = [line.strip() for line in lines]
    return _checked(labels, f"{where}: label file {file}")


def _checked(labels: list[str], what: str) -> list[str]:
    if len(labels) < 2:
        raise UserError(f"{what} must name at least two classes, got {len(labels)}")
    if "" in labels:
        raise UserError(f"{what} has an empty label at line {labels.index('') + 1}")
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise UserError(f"{what} names {twice[0]!r} more than once")
    return labels


def config_labels(config: dict, field: str, what: str) -> list[str] | None:
    """The checkpoint's {index: name} map as a list, or None where config.json has none."""
    mapping: Any = config.get(field)
    if not mapping:
        return None
    try:
        indexed = {int(k): str(v) for k, v in dict(mapping).items()}
    except (TypeError, ValueError):
        raise UserError(f"{what}: {field} must map class indices to names") from None
    if sorted(indexed) != list(range(len(indexed))):
        raise UserError(f"{what}: {field} must number its classes 0..{len(indexed) - 1}")
    return _checked([indexed[i] for i in range(len(indexed))], f"{what}: {field}")


def resolve_labels(settings: Any, config: dict, trained: bool, where: str) -> dict[str, list[str]]:
    names = {}
    for labeled in LABELED_OUTPUTS[settings.head]:
        explicit = getattr(settings, labeled.setting)
        seeded = getattr(settings, labeled.seeded_setting)
        if explicit:
            names[labeled.output] = read_label_file(explicit, f"{where}.{labeled.setting}")
        elif trained:
            found = config_labels(config, labeled.config_field, f"{where}.path config.json")
            if found is None:
                raise UserError(
                    f"{where}: the checkpoint's config.json has no {labeled.config_field} for "
                    f"{labeled.output}; pass a label file as {where}.{labeled.setting}=FILE"
                )
            names[labeled.output] = found
        elif seeded:
            names[labeled.output] = read_label_file(seeded, f"{where}.{labeled.seeded_setting}")
        else:
            raise UserError(
                f"{where}: the {settings.head} head is seeded and {labeled.output} has no labels; "
                f"pass a label file as {where}.{labeled.setting}=FILE"
            )
    return names
