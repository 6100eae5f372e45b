"""deploy --kubernetes: the manifests that serve an archive in a cluster with NVIDIA's Triton image.

One real QuartzNet-mini archive (plain, and the same sealed with a key), the deploy command as
users run it; the core objects are checked against Kubernetes' own schemas (kubernetes-validate,
strict: no unknown field), the KServe objects (CRDs) for the fields KServe needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helpers.deploy_command import deploy
from helpers.project import compose_config

from modelrepo_gen.archive.encryption import seal
from modelrepo_gen.archive.kubernetes import render_kubernetes, settings_for
from modelrepo_gen.assembly.run import build_repository
from modelrepo_gen.core.errors import UserError

KUBERNETES = "1.31"  # the cluster version the core objects are checked against
KEY = "k8s archive key 1d9c52e0"
CORE = ("deployment.yaml", "horizontalpodautoscaler.yaml", "service.yaml")
KSERVE = ("kserve/inferenceservice.yaml", "kserve/servingruntime.yaml")


def load(folder: Path) -> dict[str, dict]:
    """Each rendered file's one object, by its path in the folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): yaml.safe_load(p.read_text()) for p in files}


def triton(objects: dict[str, dict]) -> dict:
    return objects["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]


def init_container(objects: dict[str, dict]) -> dict:
    return objects["deployment.yaml"]["spec"]["template"]["spec"]["initContainers"][0]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain archive and the same archive sealed with KEY (what archive_key_file= writes)."""
    work = tmp_path_factory.mktemp("k8s_archives")
    plain, unused = work / "asr.mrga", work / "unused"
    overrides = ["pipeline=asr_quartznet", "model=quartznet_mini"]
    build_repository(
        compose_config(
            [*overrides, f"archive={plain}", f"output_dir={unused}", "archive_python=[3.11,3.12]"]
        ),
        unused,
    )
    sealed = work / "asr-sealed.mrga"
    sealed.write_bytes(seal(plain.read_bytes(), KEY.encode()))
    return {"plain": plain, "sealed": sealed}


@pytest.fixture(scope="module")
def plain(archives, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("k8s_plain")
    done = deploy(
        archives["plain"], work / "repository", "--kubernetes", work / "k8s",
        "--startup-seconds", 125, "--min-replicas", 2, "--max-replicas", 5,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Kubernetes manifests for asr-quartznet written to" in done.stdout
    return load(work / "k8s")


@pytest.fixture(scope="module")
def sealed(archives, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    work = tmp_path_factory.mktemp("k8s_sealed")
    done = deploy(
        archives["sealed"], work / "repository", "--kubernetes", work / "k8s",
        "--key-env", "K8S_TEST_KEY", "--name", "speech",
        env={"K8S_TEST_KEY": KEY},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout + done.stderr
    return work / "k8s", load(work / "k8s")


def test_one_file_per_object_core_at_the_top(plain) -> None:
    assert sorted(plain) == sorted(CORE + KSERVE)  # `kubectl apply -f DIR` takes the core ones
    kinds = {path: obj["kind"] for path, obj in plain.items()}
    assert kinds["deployment.yaml"] == "Deployment"
    assert kinds["service.yaml"] == "Service"
    assert kinds["horizontalpodautoscaler.yaml"] == "HorizontalPodAutoscaler"
    assert {plain[path]["metadata"]["name"] for path in CORE} == {"asr-quartznet"}


@pytest.mark.parametrize("which", ["plain", "sealed"])
def test_the_core_objects_fit_kubernetes_schemas_strictly(which, plain, sealed) -> None:
    objects = plain if which == "plain" else sealed[1]
    for path in CORE:
        assert kubernetes_validate.validate(objects[path], KUBERNETES, strict=True) == KUBERNETES
    wrong = {**objects["service.yaml"], "spek": {}}  # strict: a misspelt field fails
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES, strict=True)


def test_triton_probes_ports_metrics_and_startup_budget(plain) -> None:
    container = triton(plain)
    assert container["command"][0] == "tritonserver"
    assert "--model-repository=/models/asr_quartznet" in container["command"]
    for port in ("--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"):
        assert port in container["command"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    for probe, path in (
        ("startupProbe", "/v2/health/ready"),
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
    startup = container["startupProbe"]
    assert 125 <= startup["failureThreshold"] * startup["periodSeconds"] < 125 + 10
    assert "nvidia.com/gpu" not in container["resources"]["limits"]  # a cpu archive
    annotations = plain["deployment.yaml"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8002",
        "prometheus.io/path": "/metrics",
    }
    service_ports = {p["name"]: p["port"] for p in plain["service.yaml"]["spec"]["ports"]}
    assert service_ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    hpa = plain["horizontalpodautoscaler.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "asr-quartznet",
    }
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in plain["deployment.yaml"]["spec"]  # the autoscaler's to set


def test_a_plain_archive_is_deployed_without_a_key(plain) -> None:
    init = init_container(plain)
    assert init["command"] == [
        "modelrepo-gen-deploy",
        "/archive/asr.mrga",
        "/models/asr_quartznet",
        "--force",
        "--python-env",
        "3.12",
        "--target",
        "cpu",
        "--backend",
        "onnx",
    ]
    assert "resources" not in init  # the GPU is the serving container's
    assert "env" not in init
    volumes = {
        v["name"]: v for v in plain["deployment.yaml"]["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["models"] == {"name": "models", "emptyDir": {}}
    assert volumes["archives"]["persistentVolumeClaim"]["claimName"] == "asr-quartznet-archives"


def test_an_encrypted_archive_takes_its_key_from_a_secret(sealed) -> None:
    folder, objects = sealed
    init = init_container(objects)
    assert init["command"][-2:] == ["--key-env", "MODELREPO_GEN_ARCHIVE_KEY"]
    assert init["env"] == [
        {
            "name": "MODELREPO_GEN_ARCHIVE_KEY",
            "valueFrom": {"secretKeyRef": {"name": "speech-archive-key", "key": "key"}},
        }
    ]
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(), path


def test_the_init_containers_command_deploys_the_archive(archives, sealed, tmp_path) -> None:
    """The rendered argv, run here: /archive and /models mapped to folders of this test."""
    argv = init_container(sealed[1])["command"]
    assert argv[0] == "modelrepo-gen-deploy"  # the console script of modelrepo_gen.deploy
    mapped = [
        str(archives["sealed"].parent / arg.removeprefix("/archive/"))
        if arg.startswith("/archive/")
        else str(tmp_path / "models" / arg.removeprefix("/models/"))
        if arg.startswith("/models/")
        else arg
        for arg in argv[1:]
    ]
    done = deploy(*mapped, env={"MODELREPO_GEN_ARCHIVE_KEY": KEY})
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "models" / "asr_quartznet" / "manifest.json").read_text())
    assert manifest["python_environment"]["python"] == "3.12"  # the serving image's


def test_gpu_target_requests_a_gpu(tmp_path) -> None:
    settings = settings_for("asr_quartznet", "gpu", "onnx", "asr.mrga", False, cpu="500m")
    render_kubernetes(settings, tmp_path / "k8s")
    objects = load(tmp_path / "k8s")
    resources = triton(objects)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["cpu"] == "500m"
    kserve = objects["kserve/inferenceservice.yaml"]["spec"]["predictor"]["model"]["resources"]
    assert kserve["limits"]["nvidia.com/gpu"] == 1
    for path in CORE:
        kubernetes_validate.validate(objects[path], KUBERNETES, strict=True)


def test_tensorrt_engines_are_made_by_the_init_container_on_the_pods_gpu(tmp_path) -> None:
    settings = settings_for("asr_quartznet", "gpu", "tensorrt", "asr.mrga", False)
    render_kubernetes(settings, tmp_path / "k8s")
    objects = load(tmp_path / "k8s")
    init = init_container(objects)
    assert init["command"][-4:] == ["--target", "gpu", "--backend", "tensorrt"]
    assert init["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert triton(objects)["resources"]["limits"]["nvidia.com/gpu"] == 1
    kubernetes_validate.validate(objects["deployment.yaml"], KUBERNETES, strict=True)


def test_a_cpu_built_archive_is_served_on_gpu_pods(archives, tmp_path) -> None:
    """One archive, either target: --target gpu renders GPU pods that deploy it for the GPU."""
    done = deploy(
        archives["plain"], tmp_path / "repository", "--target", "gpu",
        "--kubernetes", tmp_path / "k8s",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    objects = load(tmp_path / "k8s")
    assert init_container(objects)["command"][-4:] == ["--target", "gpu", "--backend", "onnx"]
    assert triton(objects)["resources"]["limits"]["nvidia.com/gpu"] == 1
    config = (tmp_path / "repository" / "asr_quartznet_acoustic_model" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config


def test_kserve_objects_have_the_fields_kserve_needs(plain) -> None:
    runtime = plain["kserve/servingruntime.yaml"]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ServingRuntime"
    assert runtime["metadata"]["name"] == "asr-quartznet-triton"
    assert {"name": "triton", "version": "2", "autoSelect": False} in runtime["spec"][
        "supportedModelFormats"
    ]
    [container] = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "nvcr.io/nvidia/tritonserver:25.10-py3"
    assert container["args"][0] == "tritonserver"
    assert "--model-repository=/mnt/models" in container["args"]  # where KServe puts storageUri

    service = plain["kserve/inferenceservice.yaml"]
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    assert service["metadata"]["name"] == "asr-quartznet"
    predictor = service["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 5)
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "triton"
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["storageUri"] == "pvc://asr-quartznet-archives/asr-quartznet"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--min-replicas", "3", "--max-replicas", "2"], "--max-replicas 2 is less than"),
        (["--name", "Speech_1"], "--name 'Speech_1' is not a valid Kubernetes name"),
        (["--triton-image", "nvcr.io/nvidia/tritonserver"], "has no tag"),
        (["--cpu", "4", "--cpu-limit", "2"], "--cpu 4 is more than --cpu-limit 2"),
    ],
)
def test_a_bad_option_is_one_line_and_nothing_is_written(
    archives, tmp_path, options, expected
) -> None:
    done = deploy(archives["plain"], tmp_path / "repo", "--kubernetes", tmp_path / "k8s", *options)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert list(tmp_path.iterdir()) == []


def test_options_are_checked_without_a_cluster_folder_too(tmp_path) -> None:
    done = deploy(tmp_path / "a.mrga", tmp_path / "repo", "--triton-image", "x:1")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --triton-image needs --kubernetes DIR"
    for options in ({"memory": "lots"}, {"startup_seconds": 0}, {"storage_uri": "bucket"}):
        with pytest.raises(UserError):
            settings_for("asr_quartznet", "cpu", "onnx", "a.mrga", False, **options)


def test_an_existing_folder_is_replaced_only_with_force_and_only_if_ours(tmp_path) -> None:
    settings = settings_for("asr_quartznet", "cpu", "onnx", "asr.mrga", False)
    folder = tmp_path / "k8s"
    render_kubernetes(settings, folder)
    with pytest.raises(UserError, match="already exists; pass --force"):
        render_kubernetes(settings, folder)
    render_kubernetes(
        settings_for("asr_quartznet", "cpu", "onnx", "new.mrga", False), folder, force=True
    )
    assert "/archive/new.mrga" in (folder / "deployment.yaml").read_text()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="notes.txt"):
        render_kubernetes(settings, folder, force=True)
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k8s"]  # no staging folder left
