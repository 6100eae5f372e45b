"""`${nemo:PART,PATH,CHANGES...}`: a part of a pipeline read from a .nemo file's model_config.yaml.

PART is sample_rate, featurizer, acoustic_model or decoder; each CHANGES (config nodes, optional)
is merged over what the file says, in order, so settings stay overridable from the command line.
For the decoder, a setting that is null in CHANGES keeps what the file says (decoder=ctc_beam's
vocabulary: the file's tokens).
`python -m modelrepo_gen pipeline=asr_nemo model.checkpoint=F.nemo --cfg job --resolve` prints
what was read.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from modelrepo_gen.core.errors import UserError

PARTS = ("sample_rate", "featurizer", "acoustic_model", "decoder")


def _read(part: str, checkpoint: str) -> Any:
    # Imported here: composing other pipelines never loads torch for this.
    from modelrepo_gen.loaders import nemo_config
    from modelrepo_gen.loaders.nemo_archive import read_nemo

    archive = read_nemo(checkpoint)
    kind = nemo_config.model_kind(archive)
    if part == "sample_rate":
        return nemo_config.sample_rate(archive)
    if part == "featurizer":
        settings = nemo_config.featurizer(archive)
        return {"component": "nemo_mel_features", "checkpoint": str(archive.path), **settings}
    if part == "acoustic_model":
        return {"component": "nemo_conv_asr", **nemo_config.acoustic_model(archive)}
    if kind == "bpe":
        return {
            "component": "ctc_sentencepiece_decoder",
            "checkpoint": str(archive.path),
            "tokenizer": nemo_config.tokenizer_reference(archive),
            "classes": nemo_config.output_classes(archive),
        }
    return {"component": "ctc_greedy_decoder", "vocabulary": nemo_config.vocabulary(archive)}


def nemo_part(part: str, checkpoint: Any, *changes: Any) -> Any:
    if part not in PARTS:
        raise UserError(f"${{nemo:{part},...}}: the part must be one of {', '.join(PARTS)}")
    if not checkpoint:
        raise UserError("model.checkpoint must name the .nemo file to import")
    read = _read(part, str(checkpoint))
    if part == "sample_rate":
        return read
    # The decoder group's null settings are the file's to say.
    return merged_over(read, changes, drop_nulls=part == "decoder")


def merged_over(read: dict, changes: tuple, drop_nulls: bool = False) -> Any:
    """`changes` (config nodes or dicts) merged over what was read from a file, in order.
    `drop_nulls`: a change's null settings keep what was read."""
    merged = OmegaConf.create(read)
    for change in changes:
        if OmegaConf.is_config(change):  # resolved where it lives: it may point anywhere
            change = OmegaConf.to_container(change, resolve=True)
        change = change or {}
        if drop_nulls:
            change = {key: value for key, value in change.items() if value is not None}
        merged = OmegaConf.merge(merged, change)
    # A config node, not a dict: OmegaConf.resolve (--cfg job --resolve) cannot put a plain
    # dict where an interpolation stood.
    return merged


def register_nemo_resolver() -> None:
    OmegaConf.register_new_resolver("nemo", nemo_part, replace=True)
