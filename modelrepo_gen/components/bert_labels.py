"""The class names of a BERT head's outputs: a label file, the checkpoint's id2label, or the
project's default file for a seeded head, in that order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelrepo_gen.components.triton_python.nlp_tasks import HEADS
from modelrepo_gen.core.errors import UserError


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
    """Class names of each labeled network output of the head (nlp_tasks.py: its label-file
    setting `labels`, `slot_labels` or `capit_labels`, and config.json field)."""
    names = {}
    for output in HEADS[settings.head].labeled_outputs():
        setting, seeded_setting = output.labels, f"seeded_{output.labels}"
        explicit, seeded = getattr(settings, setting), getattr(settings, seeded_setting)
        if explicit:
            names[output.name] = read_label_file(explicit, f"{where}.{setting}")
        elif trained:
            found = config_labels(config, output.id2label, f"{where}.path config.json")
            if found is None:
                raise UserError(
                    f"{where}: the checkpoint's config.json has no {output.id2label} for "
                    f"{output.name}; pass a label file as {where}.{setting}=FILE"
                )
            names[output.name] = found
        elif seeded:
            names[output.name] = read_label_file(seeded, f"{where}.{seeded_setting}")
        else:
            raise UserError(
                f"{where}: the {settings.head} head is seeded and {output.name} has no labels; "
                f"pass a label file as {where}.{setting}=FILE"
            )
    return names
