"""Kubernetes manifests that serve a deployed archive with NVIDIA's Triton container image.

Every `*.yaml.j2` under templates/kubernetes/ becomes the same path, without `.j2`, in the
output folder: the core objects (Deployment, Service, HorizontalPodAutoscaler) at its top, so
`kubectl apply -f DIR` applies them, and the KServe alternative in `kserve/`. The settings are
checked when they are made, so a bad value fails before anything is written; the folder is
written beside its place and swapped in whole, and replaced only if it holds nothing but files
this module writes.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment

from modelrepo_gen import __version__
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.resources import project_folder
from modelrepo_gen.core.templates import template_environment
from modelrepo_gen.repository.publish import check_output_location, written_all_or_nothing
from modelrepo_gen.repository.staging import staging_folder
from modelrepo_gen.repository.swap import swap_into_place

TEMPLATES_DIR = project_folder("templates") / "kubernetes"
SUFFIX = ".j2"
DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-py3"
DEFAULT_DEPLOY_IMAGE = f"modelrepo-gen:{__version__}"
DEFAULT_TRITON_PYTHON = "3.12"  # the Python of DEFAULT_TRITON_IMAGE (Ubuntu 24.04)
STARTUP_PERIOD_S = 10  # the startup probe's period; its failure count covers the load time
# Objects get the name plus a suffix (`-archives`, `-archive-key`, `-triton`) and KServe adds its
# own (`-predictor-...`); 40 characters keep all of them within a 63-character DNS label.
MAX_NAME = 40

# A DNS-1035 label: a Service's name must be one (a DNS-1123 label that starts with a letter).
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?"
_IMAGE = re.compile(
    rf"{_HOST}{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[mkMGTPE]|[KMGTPE]i)?")
_SCALE = {"": Decimal(1), "m": Decimal("0.001")}
_SCALE.update({s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")})
_SCALE.update({f"{s}i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")})
_URI = re.compile(r"[a-z][a-z0-9+.-]*://\S+")


@dataclass(frozen=True)
class KubernetesSettings:
    """What the manifests need; checked when made (UserError naming the option)."""

    name: str  # of every object, a DNS-1035 label
    pipeline: str  # the archive's pipeline: the repository's folder in the pod
    target: str  # cpu or gpu (gpu: one nvidia.com/gpu per pod)
    backend: str  # tensorrt: the init container makes the engines, on the pod's GPU
    archive_file: str  # its name on the archive volume
    encrypted: bool  # the init container then reads the key from the Secret <name>-archive-key
    archive_claim: str
    storage_uri: str  # KServe: where the deployed repository is
    triton_image: str = DEFAULT_TRITON_IMAGE
    deploy_image: str = DEFAULT_DEPLOY_IMAGE
    # The serving image's Python (Triton 25.10's is 3.12): the init container packs the python
    # models' packages for it, so the image needs nothing installed. The archive must carry
    # them (archive_python=[...] at build).
    triton_python: str = DEFAULT_TRITON_PYTHON
    startup_seconds: int = 300
    cpu: str = "1"
    cpu_limit: str = "2"
    memory: str = "2Gi"
    memory_limit: str = "4Gi"
    min_replicas: int = 1
    max_replicas: int = 3
    cpu_utilization: int = 70

    def __post_init__(self) -> None:
        _check_name(self.name, "--name")
        if not _SUBDOMAIN.fullmatch(self.archive_claim) or len(self.archive_claim) > 253:
            raise UserError(
                f"--archive-claim {self.archive_claim!r} is not a valid claim name (lowercase "
                "letters, digits, '-' and '.')"
            )
        if "/" in self.archive_file or self.archive_file in ("", ".", ".."):
            raise UserError(f"archive file name {self.archive_file!r} cannot name a file")
        if not _URI.fullmatch(self.storage_uri):
            raise UserError(
                f"--storage-uri {self.storage_uri!r} is not a URI, e.g. pvc://claim/folder "
                "or s3://bucket/folder"
            )
        _check_image(self.triton_image, "--triton-image")
        _check_image(self.deploy_image, "--deploy-image")
        if not re.fullmatch(r"3\.\d{1,2}", self.triton_python):
            raise UserError(
                f"--triton-python {self.triton_python!r} is not a Python version like 3.10"
            )
        if self.startup_seconds < 1:
            raise UserError(f"--startup-seconds must be at least 1, not {self.startup_seconds}")
        _check_resources("--cpu", self.cpu, "--cpu-limit", self.cpu_limit)
        _check_resources("--memory", self.memory, "--memory-limit", self.memory_limit)
        if self.min_replicas < 1:
            raise UserError(f"--min-replicas must be at least 1, not {self.min_replicas}")
        if self.max_replicas < self.min_replicas:
            raise UserError(
                f"--max-replicas {self.max_replicas} is less than --min-replicas "
                f"{self.min_replicas}"
            )
        if self.cpu_utilization < 1:
            raise UserError(f"--cpu-utilization must be at least 1 (%), not {self.cpu_utilization}")


def dns_name(pipeline: str) -> str:
    """The objects' default name: the pipeline's, lowercase, `_` and the like as `-`."""
    name = re.sub(r"[^a-z0-9]+", "-", pipeline.lower()).strip("-")
    try:
        _check_name(name, "the pipeline name")
    except UserError as error:
        raise UserError(f"{error}; pass --name") from None
    return name


def settings_for(
    pipeline: str,
    target: str,
    backend: str,
    archive_file: str,
    encrypted: bool,
    name: str | None = None,
    archive_claim: str | None = None,
    storage_uri: str | None = None,
    **options: str | int | None,
) -> KubernetesSettings:
    """The settings for an archive, with the default names derived from `name`; an option
    that is None keeps its default."""
    name = dns_name(pipeline) if name is None else name
    _check_name(name, "--name")  # before it is part of the other defaults
    claim = f"{name}-archives" if archive_claim is None else archive_claim
    uri = f"pvc://{claim}/{name}" if storage_uri is None else storage_uri
    given = {option: value for option, value in options.items() if value is not None}
    return KubernetesSettings(
        name, pipeline, target, backend, archive_file, encrypted, claim, uri, **given
    )


def check_manifest_dir(out_dir: Path, force: bool, output_dir: Path | None = None) -> None:
    """Before any work: `out_dir` may be written (and replaced, with `force`)."""
    check_output_location(str(out_dir), out_dir)
    if output_dir is not None and (
        out_dir == output_dir or output_dir in out_dir.parents or out_dir in output_dir.parents
    ):
        raise UserError(
            f"--kubernetes {out_dir} and the repository {output_dir} overlap; name a folder "
            "outside the repository"
        )
    if out_dir.is_file() or (out_dir.exists() and not out_dir.is_dir()):
        raise UserError(f"--kubernetes {out_dir} is a file, not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not force:
        raise UserError(f"--kubernetes {out_dir} already exists; pass --force to replace it")
    ours = set(_template_paths()) | {p.parent for p in _template_paths()}
    foreign = sorted(
        p.relative_to(out_dir).as_posix()
        for p in out_dir.rglob("*")
        if p.relative_to(out_dir) not in ours or p.is_symlink()
    )
    if foreign:
        raise UserError(
            f"refusing to replace {out_dir}: it holds files deploy did not write: "
            f"{', '.join(foreign[:6])}{' ...' if len(foreign) > 6 else ''}; move them out or "
            "choose another --kubernetes folder"
        )


def render_kubernetes(
    settings: KubernetesSettings, out_dir: Path, force: bool = False
) -> list[Path]:
    """Write the manifests for `settings` at `out_dir`, all or nothing; the files written."""
    files = {path: _render(path, settings) for path in _template_paths()}
    with written_all_or_nothing(out_dir) as interrupts:
        check_manifest_dir(out_dir, force)
        with staging_folder(out_dir) as staging:
            for path, text in files.items():
                (staging / path).parent.mkdir(parents=True, exist_ok=True)
                (staging / path).write_text(text)
            with interrupts.held(out_dir):
                check_manifest_dir(out_dir, force)  # again: it may have changed meanwhile
                if out_dir.is_dir() and any(out_dir.iterdir()):
                    swap_into_place(staging, out_dir)
                else:
                    os.rename(staging, out_dir)  # in place of nothing, or an empty folder
    return [out_dir / path for path in files]


def _template_paths() -> list[Path]:
    """The output files, relative to the folder: one per template."""
    return sorted(
        p.relative_to(TEMPLATES_DIR).with_suffix("") for p in TEMPLATES_DIR.rglob(f"*{SUFFIX}")
    )


def _render(path: Path, settings: KubernetesSettings) -> str:
    values = asdict(settings)
    values["startup_period"] = STARTUP_PERIOD_S
    # failureThreshold x periodSeconds must cover the load time
    values["startup_failures"] = math.ceil(settings.startup_seconds / STARTUP_PERIOD_S)
    return _ENVIRONMENT.get_template(f"{path.as_posix()}{SUFFIX}").render(**values)


def _yaml_string(value: object) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is YAML's), whatever `value` holds."""
    return json.dumps(str(value))


def _check_name(name: str, option: str) -> None:
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise UserError(
            f"{option} {name!r} is not a valid Kubernetes name: at most {MAX_NAME} lowercase "
            "letters, digits and '-', starting with a letter and ending with a letter or digit"
        )


def _check_image(image: str, option: str) -> None:
    match = _IMAGE.fullmatch(image)
    if match is None:
        raise UserError(f"{option} {image!r} is not an image reference, e.g. registry/name:tag")
    if not (match["tag"] or match["digest"]):
        raise UserError(f"{option} {image!r} has no tag: name the version, e.g. {image}:1.0")


def _quantity(value: str, option: str) -> Decimal:
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise UserError(f"{option} {value!r} is not a Kubernetes quantity, e.g. 500m, 2 or 4Gi")
    amount = Decimal(match["number"]) * _SCALE[match["suffix"] or ""]
    if amount <= 0:
        raise UserError(f"{option} must be more than 0, not {value!r}")
    return amount


def _check_resources(request_option: str, request: str, limit_option: str, limit: str) -> None:
    """Kubernetes refuses a pod whose request is more than its limit."""
    if _quantity(request, request_option) > _quantity(limit, limit_option):
        raise UserError(
            f"{request_option} {request} is more than {limit_option} {limit}; raise the limit"
        )


def _environment() -> Environment:
    return template_environment(TEMPLATES_DIR, {"yaml_string": _yaml_string})


_ENVIRONMENT = _environment()
