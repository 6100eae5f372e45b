"""A .nemo file that cannot be imported stops the build with one line naming what is wrong.

Each bad file is made from a NeMo-made fixture: not a tar, weights or config or tokenizer left
out, an encoder or preprocessor setting this project does not implement, a member that would
escape the extraction folder or is a link, weights that do not fit the config. Two of them go
through the command line: one `error:` line, exit status 2, nothing written.
"""

from __future__ import annotations

import gzip
import io
import shlex
import tarfile
from pathlib import Path

import pytest
import torch
import yaml
from helpers.asr_fixtures import compose_config
from helpers.cli_runs import run_cli
from helpers.nemo_archives import nemo_members, pack_nemo, with_changed_config
from helpers.nemo_fixtures import FIXTURES
from helpers.pickled_code import RunsCode

from modelrepo_gen.core.errors import UserError
from modelrepo_gen.plan.resolver import resolve

QUARTZNET = FIXTURES / "quartznet_like.nemo"
CITRINET = FIXTURES / "citrinet_like.nemo"


def _refusal(checkpoint: Path, *overrides: str) -> str:
    with pytest.raises(UserError) as caught:
        resolve(compose_config(["pipeline=asr_nemo", f"model.checkpoint={checkpoint}", *overrides]))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_file_that_is_no_tar_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "model.nemo"
    bad.write_text("not an archive\n")
    assert "is not a .nemo file: expected a tar archive" in _refusal(bad)


@pytest.mark.parametrize("left_out", ["model_weights.ckpt", "model_config.yaml"])
def test_a_missing_weights_or_config_file_is_named(tmp_path: Path, left_out: str) -> None:
    members = {k: v for k, v in nemo_members(QUARTZNET).items() if k != left_out}
    message = _refusal(pack_nemo(tmp_path / "model.nemo", members))
    assert f"holds no {left_out}" in message


def test_a_missing_tokenizer_file_is_named(tmp_path: Path) -> None:
    members = {k: v for k, v in nemo_members(CITRINET).items() if not k.endswith("tokenizer.model")}
    message = _refusal(pack_nemo(tmp_path / "model.nemo", members))
    assert "tokenizer.model_path: nemo:" in message and "holds no file" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["encoder"]["jasper"][1].update(mixture_of_experts=True),
            "sets encoder.jasper.1.mixture_of_experts: True, which is not supported",
        ),
        (
            lambda c: c["encoder"].update(activation="swish"),
            "sets encoder.activation: 'swish', which is not supported (supported: 'relu')",
        ),
        (
            lambda c: c["preprocessor"].update(exact_pad=True),
            "sets preprocessor.exact_pad: True, which is not supported (supported: False)",
        ),
        (
            lambda c: c["preprocessor"].update(features_type="mfcc"),
            "sets preprocessor.features_type: 'mfcc', which is not supported",
        ),
        (
            lambda c: c.update(target="nemo.collections.asr.models.EncDecRNNTModel"),
            "sets target: 'nemo.collections.asr.models.EncDecRNNTModel', which is not supported",
        ),
    ],
)
def test_a_setting_that_is_not_implemented_is_refused_by_name(
    tmp_path: Path, change, expected: str
) -> None:
    assert expected in _refusal(with_changed_config(tmp_path / "model.nemo", QUARTZNET, change))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+model.featurizer.highfreq=4000", "mel filterbank is not the one these settings give"),
        ("+model.featurizer.mel_norm=null", "mel filterbank is not the one these settings give"),
        ("+model.featurizer.window=hamming", "window is not the symmetric hamming window"),
    ],
)
def test_an_override_the_file_tensors_cannot_honour_is_refused(
    override: str, expected: str
) -> None:
    # The features come from the file's window and filterbank: they must stay what it says.
    assert expected in _refusal(QUARTZNET, override)


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("../escaped.txt", tarfile.REGTYPE, "would be written outside the extraction folder"),
        ("/tmp/absolute.txt", tarfile.REGTYPE, "would be written outside the extraction folder"),
        ("link", tarfile.SYMTYPE, "is a link; only plain files and folders are allowed"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_extracted(
    tmp_path: Path, name: str, kind: bytes, expected: str
) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.size = 4 if kind == tarfile.REGTYPE else 0
    member.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    folder = tmp_path / "inside"
    folder.mkdir()
    bad = pack_nemo(folder / "model.nemo", nemo_members(QUARTZNET), [member])
    assert f"is refused: member {name!r} {expected}" in _refusal(bad)
    assert not (tmp_path / "escaped.txt").exists()


def test_weights_that_do_not_fit_are_listed_by_their_nemo_names(tmp_path: Path) -> None:
    members = nemo_members(QUARTZNET)
    state = torch.load(io.BytesIO(members["model_weights.ckpt"]), weights_only=True)
    del state["encoder.encoder.1.mconv.0.conv.weight"]
    state["decoder.decoder_layers.0.bias"] = torch.zeros(5)
    state["encoder.encoder.9.extra.weight"] = torch.zeros(1)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    members["model_weights.ckpt"] = buffer.getvalue()
    message = _refusal(pack_nemo(tmp_path / "model.nemo", members))
    assert "its weights do not fit the network its model_config.yaml describes" in message
    assert "missing: encoder.encoder.1.mconv.0.conv.weight" in message
    assert "unused: encoder.encoder.9.extra.weight" in message
    assert "mis-shaped: decoder.decoder_layers.0.bias ([5], the network needs [29])" in message


def test_code_pickled_in_the_weights_never_runs(tmp_path: Path) -> None:
    members, marker = nemo_members(QUARTZNET), tmp_path / "code_ran"
    buffer = io.BytesIO()
    torch.save({"w": RunsCode(f"touch {shlex.quote(str(marker))}")}, buffer)
    members["model_weights.ckpt"] = buffer.getvalue()
    message = _refusal(pack_nemo(tmp_path / "model.nemo", members))  # one line
    expected = "model_weights.ckpt was not loaded: it holds pickled Python objects (posix.system)"
    assert expected in message
    assert "weights_only=False" not in message  # torch's advice: run the file's code
    assert not marker.exists()
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)  # the code does run
    assert marker.exists()


def test_a_gzipped_nemo_file_is_read_like_a_plain_one(tmp_path: Path) -> None:
    zipped = tmp_path / "model.nemo"
    zipped.write_bytes(gzip.compress(QUARTZNET.read_bytes()))
    plan = resolve(compose_config(["pipeline=asr_nemo", f"model.checkpoint={zipped}"]))
    assert [u.name for u in plan.units][0] == "asr_nemo_feature_extractor"
    assert plan.weights["asr_nemo_acoustic_model"] == {"source": "nemo", "path": str(zipped)}


@pytest.mark.parametrize("bad", ["no_tar", "traversal"])
def test_the_command_line_says_one_line_and_writes_nothing(tmp_path: Path, bad: str) -> None:
    if bad == "no_tar":
        checkpoint = tmp_path / "model.nemo"
        checkpoint.write_bytes(b"\x00" * 600)
    else:
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = 4
        checkpoint = pack_nemo(tmp_path / "model.nemo", nemo_members(QUARTZNET), [member])
    output = tmp_path / "repository"
    result = run_cli("pipeline=asr_nemo", f"model.checkpoint={checkpoint}", f"output_dir={output}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model.checkpoint"), result.stderr
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nemo"]


def test_cfg_job_resolve_shows_what_was_read_and_overrides_apply() -> None:
    result = run_cli(
        "pipeline=asr_nemo",
        f"model.checkpoint={CITRINET}",
        "+model.featurizer.pad_to=0",
        "--cfg",
        "job",
        "--resolve",
    )
    assert result.returncode == 0, result.stderr
    models = yaml.safe_load(result.stdout)["pipeline"]["models"]
    featurizer = models["feature_extractor"]
    assert featurizer["features"] == 80 and featurizer["n_window_size"] == 400  # 25 ms
    assert featurizer["pad_to"] == 0  # the override, over the file's 16
    assert featurizer["not_used_at_inference"] == {"dither": 1e-05}
    assert models["acoustic_model"]["blocks"][1]["se"] is True
    assert models["acoustic_model"]["blocks"][1]["residual_stride"] is True
    assert models["ctc_decoder"]["component"] == "ctc_sentencepiece_decoder"
    assert models["ctc_decoder"]["classes"] == 48
