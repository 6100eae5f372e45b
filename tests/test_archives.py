"""Build -> archive -> deploy: one portable file, plain or encrypted, every byte checked.

Real builds (QuartzNet mini), real archive files, the deploy command as users run it.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers.cli_runs import run_cli
from helpers.deploy_command import deploy
from helpers.project import compose_config

from modelrepo_gen.archive.container import INDEX, gzip_framed, pack, tar_bytes, unpack
from modelrepo_gen.archive.read import read_archive
from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.exporters.tensorrt_exporter import missing_requirement

SMALL = ["pipeline=asr_quartznet", "model=quartznet_mini"]
KEY = "correct horse battery staple 7f3a"


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_one_line_failure(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert KEY not in done.stderr + done.stdout
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A direct build, a plain archive, a second plain archive and an encrypted one."""
    work = tmp_path_factory.mktemp("archives")
    key_file = work / "archive.key"
    key_file.write_text(KEY + "\n")
    paths = {"direct": work / "direct", "key": key_file}
    build_repository(compose_config([*SMALL, f"output_dir={paths['direct']}"]), paths["direct"])
    for name, extra in (
        ("plain", []),
        ("again", []),
        ("sealed", [f"archive_key_file={key_file}"]),
    ):
        paths[name] = work / f"{name}.mrga"
        unused = work / f"{name}_output_dir"
        cfg = compose_config([*SMALL, f"archive={paths[name]}", f"output_dir={unused}", *extra])
        build_repository(cfg, unused)
        assert not unused.exists()  # the archive instead of output_dir
    return paths


def test_a_plain_archive_is_byte_identical_and_a_standard_tar_gz(built) -> None:
    assert built["plain"].read_bytes() == built["again"].read_bytes()
    with tarfile.open(built["plain"], "r:gz") as archive:  # what `tar tzf` reads
        names = archive.getnames()
        index = json.load(archive.extractfile(INDEX))
    assert names[0] == INDEX
    assert "repository/manifest.json" in names
    assert "repository/asr_quartznet_acoustic_model/1/model.onnx" in names
    assert (index["pipeline"], index["target"], index["format"]) == ("asr_quartznet", "cpu", 1)
    assert set(index["files"]) == set(names[1:])


def folders(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def test_deploy_writes_what_the_direct_build_writes(built, tmp_path) -> None:
    as_built = ["--python-env", "none"]
    done = deploy(built["plain"], tmp_path / "plain", *as_built)
    assert done.returncode == 0, done.stderr
    assert "asr_quartznet for target=cpu (onnx) deployed" in done.stdout
    done = deploy(built["sealed"], tmp_path / "sealed", "--key-file", built["key"], *as_built)
    assert done.returncode == 0, done.stderr
    env = {"MRG_KEY": KEY + "\n"}  # a trailing newline is not part of the key
    done = deploy(built["sealed"], tmp_path / "env", "--key-env", "MRG_KEY", *as_built, env=env)
    assert done.returncode == 0, done.stderr
    direct = snapshot(built["direct"])
    for name in ("plain", "sealed", "env"):
        assert snapshot(tmp_path / name) == direct
        assert folders(tmp_path / name) == folders(built["direct"])  # the ensemble's 1/ too


def test_by_default_deploy_packs_the_python_models_packages(built, tmp_path) -> None:
    done = deploy(built["plain"], tmp_path / "packed")
    assert done.returncode == 0, done.stderr
    packed, direct = snapshot(tmp_path / "packed"), snapshot(built["direct"])
    manifest = json.loads(packed["manifest.json"])
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert manifest["python_environment"]["python"] == python
    assert set(manifest["python_environment"]["packages"]) == {"onnxruntime"}
    with tarfile.open(tmp_path / "packed" / "python_env.tar.gz") as environment:
        names = environment.getnames()
    assert "bin/activate" in names
    assert f"lib/python{python}/site-packages/onnxruntime/__init__.py" in names
    for name, content in direct.items():
        if name.endswith("config.pbtxt") and b'backend: "python"' in content:
            assert packed[name].startswith(content) and b"EXECUTION_ENV_PATH" in packed[name]
        elif name != "manifest.json":
            assert packed[name] == content, name


def test_the_key_is_never_written_or_printed(built, tmp_path) -> None:
    assert KEY.encode() not in built["sealed"].read_bytes()
    sealed = read_archive(built["sealed"], KEY.encode())
    assert sealed.encrypted
    assert all(KEY.encode() not in content for content in sealed.repository.values())
    shown = run_cli(*SMALL, f"archive={tmp_path / 'a.mrga'}", "archive_key_env=MRG_KEY", "--cfg")
    assert KEY not in shown.stdout + shown.stderr
    done = deploy(built["sealed"], tmp_path / "out", "--key-env", "MRG_KEY", env={"MRG_KEY": "no"})
    assert_one_line_failure(done, "cannot decrypt", "wrong key")


def test_an_existing_archive_is_kept_unless_force(built, tmp_path) -> None:
    target = tmp_path / "a.mrga"
    target.write_bytes(b"mine")
    done = run_cli(*SMALL, f"archive={target}")
    assert done.returncode == 2 and "already exists; pass force=true" in done.stderr
    assert target.read_bytes() == b"mine"
    done = run_cli(*SMALL, f"archive={target}", "force=true")
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == built["plain"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mrga"]  # no staging left


def test_a_sweep_with_one_archive_file_is_refused(tmp_path) -> None:
    done = run_cli("-m", *SMALL, "seed=1,2", f"archive={tmp_path / 'a.mrga'}")
    assert done.returncode != 0
    assert "archive= names one file" in done.stdout + done.stderr
    assert not (tmp_path / "a.mrga").exists()


def crafted(tmp_path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], index=None) -> Path:
    """An archive with chosen members, in the canonical gzip framing."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(index or {"format": 1, "files": {}}).encode()
        info = tarfile.TarInfo(INDEX)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, content = member
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    path = tmp_path / "crafted.mrga"
    path.write_bytes(gzip_framed(buffer.getvalue()))
    return path


def link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d, b: d / "missing.mrga", "cannot read"),
        (lambda d, b: write(d, b""), "is empty"),
        (lambda d, b: write(d, b"name,text\nfoo,bar\n"), "is not a modelrepo_gen archive"),
        (lambda d, b: write(d, gzip.compress(b"hello")), "a gzip file it did not write"),
        (lambda d, b: write(d, b["plain"].read_bytes()[:-1000]), "truncated"),
        (lambda d, b: write(d, b["plain"].read_bytes()[:100]), "truncated"),
        (lambda d, b: write(d, b["sealed"].read_bytes()[:-5]), "cannot decrypt"),
        (lambda d, b: crafted(d, [("../evil.py", b"x")]), "unsafe: member '../evil.py'"),
        (lambda d, b: crafted(d, [("/etc/evil", b"x")]), "unsafe: member '/etc/evil'"),
        (lambda d, b: crafted(d, [link("repository/a", "/etc", tarfile.SYMTYPE)]), "is a link"),
        (lambda d, b: crafted(d, [link("repository/b", INDEX, tarfile.LNKTYPE)]), "is a link"),
        (lambda d, b: crafted(d, [], {"format": 99, "files": {}}), "newer modelrepo_gen"),
        (lambda d, b: crafted(d, [("repository/x", b"x")]), "members differ from its index"),
    ],
    ids=[
        "missing",
        "empty",
        "csv",
        "other-gzip",
        "truncated",
        "header-only",
        "sealed-truncated",
        "dot-dot",
        "absolute",
        "symlink",
        "hardlink",
        "newer-format",
        "unlisted-member",
    ],
)
def test_a_bad_archive_is_one_line_and_nothing_is_written(built, tmp_path, make, expected) -> None:
    source = tmp_path / "in"
    source.mkdir()
    archive = make(source, built)
    key = (
        ["--key-file", built["key"]] if "sealed" in expected or expected == "cannot decrypt" else []
    )
    output = tmp_path / "out"
    assert_one_line_failure(deploy(archive, output, *key), expected)
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert not (tmp_path.parent / "evil.py").exists()


def write(folder: Path, data: bytes) -> Path:
    path = folder / "archive.mrga"
    path.write_bytes(data)
    return path


def test_keys_that_do_not_fit_are_one_line(built, tmp_path) -> None:
    out = tmp_path / "out"
    assert_one_line_failure(deploy(built["sealed"], out), "is encrypted", "--key-file")
    assert_one_line_failure(
        deploy(built["plain"], out, "--key-file", built["key"]), "is not encrypted"
    )
    wrong = tmp_path / "wrong.key"
    wrong.write_text(KEY[:-1])
    assert_one_line_failure(deploy(built["sealed"], out, "--key-file", wrong), "wrong key")
    assert_one_line_failure(deploy(built["sealed"], out, "--key-env", "MRG_UNSET_KEY"), "not set")
    assert_one_line_failure(
        deploy(built["sealed"], out, "--key-file", built["key"], "--key-env", "X"), "not both"
    )
    assert not out.exists()


def test_outputs_it_must_not_replace_and_targets_it_cannot_serve(built, tmp_path) -> None:
    ours = tmp_path / "ours"
    assert deploy(built["plain"], ours).returncode == 0
    before = snapshot(ours)
    assert_one_line_failure(deploy(built["plain"], ours), "already exists; pass --force")
    assert_one_line_failure(
        deploy(built["plain"], tmp_path / "o2", "--target", "cpu", "--backend", "tensorrt"),
        "--backend tensorrt needs --target gpu",
    )
    assert_one_line_failure(
        deploy(built["plain"], tmp_path / "o2", "--backend", "torchscript"),
        "holds no repository for target=cpu with backend=torchscript: build the archive with "
        "target=cpu backend=torchscript",
    )
    assert not (tmp_path / "o2").exists()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    assert_one_line_failure(deploy(built["plain"], theirs, "--force"), "refusing to replace")
    assert (theirs / "notes.txt").read_text() == "keep me"
    assert snapshot(ours) == before
    assert deploy(built["plain"], ours, "--force").returncode == 0
    assert snapshot(ours) == before


def test_one_changed_byte_anywhere_is_refused() -> None:
    files = {"repository/manifest.json": b"{}", "repository/a/config.pbtxt": b"name: 'a'\n" * 20}
    data = pack({"format": 1}, files)
    assert unpack(data, "a", 1)[1] == files
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        with pytest.raises(UserError):
            unpack(bytes(changed), "a", 1)
    assert tar_bytes(files) == tar_bytes(dict(reversed(files.items())))  # order-independent


@pytest.mark.parametrize("name", ["plain", "sealed"])
def test_a_changed_byte_in_a_real_archive_is_refused(built, tmp_path, name) -> None:
    data = built[name].read_bytes()
    key = KEY.encode() if name == "sealed" else None
    # Header, index, a network, the wheels, the end (every position: the test above).
    positions = [0, 9, 10, 30, 100, 600, len(data) // 3, len(data) // 2, len(data) - 9]
    positions += [len(data) - 1]
    changed_file = tmp_path / "changed.mrga"
    for position in positions:
        changed = bytearray(data)
        changed[position] ^= 0x20
        changed_file.write_bytes(bytes(changed))
        with pytest.raises(UserError):
            read_archive(changed_file, key)


def test_one_archive_deploys_on_either_target(built, tmp_path) -> None:
    """Built for one target, deployed for the other: the repository the direct build writes
    for that target, byte for byte. On gpu the networks run on Triton's onnxruntime backend,
    and the python model left (the CTC decoder) needs only numpy, so nothing is packed."""
    gpu = [*SMALL, "target=gpu"]
    build_repository(
        compose_config([*gpu, f"output_dir={tmp_path / 'direct'}"]), tmp_path / "direct"
    )
    done = deploy(built["plain"], tmp_path / "deployed", "--target", "gpu")
    assert done.returncode == 0, done.stderr
    assert "for target=gpu (onnx)" in done.stdout
    assert "python models' packages: none needed" in done.stdout
    deployed = snapshot(tmp_path / "deployed")
    assert deployed == snapshot(tmp_path / "direct")
    acoustic = deployed["asr_quartznet_acoustic_model/config.pbtxt"].decode()
    assert 'platform: "onnxruntime_onnx"' in acoustic and "KIND_GPU" in acoustic
    # And back: an archive built for gpu deploys on cpu as the direct cpu build.
    archive = tmp_path / "gpu.mrga"
    build_repository(compose_config([*gpu, f"archive={archive}"]), tmp_path / "unused")
    done = deploy(archive, tmp_path / "on_cpu", "--target", "cpu", "--python-env", "none")
    assert done.returncode == 0, done.stderr
    assert snapshot(tmp_path / "on_cpu") == snapshot(built["direct"])
    done = deploy(archive, tmp_path / "as_built")
    assert done.returncode == 0, done.stderr
    assert snapshot(tmp_path / "as_built") == deployed


def test_the_archive_says_how_deploy_makes_tensorrt_engines(built) -> None:
    """Profiles from the config's bounds (batch up to max_batch_size, audio up to the longest
    request), and what the ONNX networks answered at the parity shapes, for the engine check."""
    archive = read_archive(built["plain"], None)
    rendering = archive.index["renderings"]["gpu-tensorrt"]
    engines = rendering["engines"]
    assert sorted(engines) == [
        "asr_quartznet_acoustic_model/1/model.plan",
        "asr_quartznet_feature_extractor/1/model.plan",
    ]
    extractor = engines["asr_quartznet_feature_extractor/1/model.plan"]
    low, typical, high = extractor["profile"]["AUDIO_SIGNAL"]
    assert low == [1, 1] and high[0] == 8 and high[1] > typical[1]
    config = archive.members["renderings/gpu-tensorrt/asr_quartznet_feature_extractor/config.pbtxt"]
    assert b'platform: "tensorrt_plan"' in config and f"{high[1]}".encode() not in config
    checks = [name for name in archive.members if name.startswith(extractor["checks"] + "/")]
    assert len(checks) == 2 * 2  # two parity shapes, two inputs each
    assert "model.plan" not in str(rendering["files"])  # made by deploy, on the serving GPU


@pytest.mark.skipif(
    missing_requirement() is None, reason="tensorrt and a GPU are here: the engines are made"
)
def test_tensorrt_engines_where_they_cannot_be_made_are_one_line(built, tmp_path) -> None:
    done = deploy(built["plain"], tmp_path / "engines", "--backend", "tensorrt")
    assert_one_line_failure(
        done, "cannot make the TensorRT engines of archive", missing_requirement()
    )
    assert not (tmp_path / "engines").exists()


@pytest.mark.skipif(
    missing_requirement() is not None,
    reason=f"TensorRT engines are made on a GPU with tensorrt: {missing_requirement()}",
)
def test_tensorrt_engines_are_made_and_checked_on_the_target(built, tmp_path) -> None:
    done = deploy(built["plain"], tmp_path / "engines", "--backend", "tensorrt")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "engines" / "manifest.json").read_text())
    for name in ("asr_quartznet_feature_extractor", "asr_quartznet_acoustic_model"):
        assert (tmp_path / "engines" / name / "1" / "model.plan").stat().st_size > 0
        parity = manifest["models"][name]["parity_on_target"]
        assert parity and all(r["relative_error"] <= 1e-3 for r in parity)


def test_tensorrt_engines_need_onnx_networks(tmp_path) -> None:
    archive = tmp_path / "scripted.mrga"
    cfg = compose_config([*SMALL, "backend=torchscript", f"archive={archive}"])
    build_repository(cfg, tmp_path / "unused")
    assert_one_line_failure(
        deploy(archive, tmp_path / "engines", "--backend", "tensorrt"),
        "cannot be deployed for target=gpu with backend=tensorrt: TensorRT engines are made "
        "from ONNX networks",
        "build the archive with backend=onnx",
    )
    assert not (tmp_path / "engines").exists()


def test_a_python_the_archive_carries_no_packages_for_is_refused(built, tmp_path) -> None:
    """Deploy names the Pythons the archive carries and how to get another."""
    done = deploy(built["plain"], tmp_path / "other", "--python-env", "3.7")
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert_one_line_failure(
        done,
        f"carries the python models' packages for Python {this}, not 3.7: build it with "
        "archive_python=3.7 (or a list), or deploy with --python-env none",
    )
    assert not (tmp_path / "other").exists()
