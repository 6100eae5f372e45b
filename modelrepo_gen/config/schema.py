"""Typed schema of the composed config: Hydra rejects mistyped overrides against it at compose time.

Sections whose shape depends on the pipeline (`pipeline` and the parts its graph names, such as
`featurizer` or `model`) are checked by the resolver against each component's own dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from modelrepo_gen.components.piper_voice_source import piper_voice_setting
from modelrepo_gen.components.triton_python.nlp_tasks import TASKS
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.resources import project_folder


@dataclass
class DynamicBatchingConfig:
    enabled: bool = True
    preferred_batch_size: list[int] = field(default_factory=list)
    max_queue_delay_us: int = 100


@dataclass
class InstanceGroupConfig:
    count: int = 1
    kind: str | None = None  # KIND_CPU | KIND_GPU; None: the target's kind


@dataclass
class ServingConfig:
    """Triton knobs of one model; per_model entries override any subset of them."""

    max_batch_size: int = 8
    dynamic_batching: DynamicBatchingConfig = field(default_factory=DynamicBatchingConfig)
    instance_group: InstanceGroupConfig = field(default_factory=InstanceGroupConfig)


@dataclass
class PrecisionConfig:
    name: str = MISSING  # fp32 | fp16
    # Largest allowed |exported - pytorch| / max(1, max |pytorch|) over every checked output.
    parity_tolerance: float = MISSING


@dataclass
class TargetConfig:
    name: str = MISSING
    device_kind: str = MISSING  # KIND_CPU | KIND_GPU
    # True: every model runs in Triton's python backend (the CPU server has no other backend).
    python_backend_only: bool = MISSING
    # True: a python model runs the models it calls itself, in its own process, rather than
    # through the server (each call would be an inter-process round trip).
    calls_in_process: bool = MISSING
    # True: the ensemble's steps run in one python model, in its process (plan/merged_steps).
    merge_python_steps: bool = MISSING


@dataclass
class ParityShape:
    batch: int = 1
    seconds: float = 1.0  # length for networks that take audio or features
    tokens: int | None = None  # length for networks that take token ids (they need it set)


@dataclass
class RecipeConfig:
    """What a recipe file (+recipe=NAME) says of itself."""

    name: str = MISSING
    fits: list[str] = field(default_factory=list)  # pipeline families; empty: every one


@dataclass
class BuildConfig:
    pipeline: Any = MISSING
    # Shared parts a pipeline's graph is made of (config groups; a pipeline uses those it needs).
    featurizer: Any = None
    model: Any = None
    decoder: Any = None
    vocabulary: Any = None
    text_normalization: Any = None  # speech synthesis: normalization rules
    tts_symbols: Any = None  # speech synthesis: the symbol set the acoustic model reads
    mode: Any = None  # CTC speech recognition: offline or streaming (in chunks)
    precision: PrecisionConfig = MISSING
    target: TargetConfig = MISSING
    dynamic_batching: DynamicBatchingConfig = MISSING
    backend: str = "onnx"
    max_batch_size: int = 8
    instance_group: InstanceGroupConfig = field(default_factory=InstanceGroupConfig)
    per_model: dict[str, Any] = field(default_factory=dict)
    parity_shapes: list[ParityShape] = field(default_factory=list)
    output_dir: str = "model_repository"
    # archive=PATH: write one portable archive file instead of output_dir (deploy turns it into
    # a repository); archive_key_file / archive_key_env encrypt it.
    archive: str | None = None
    archive_key_file: str | None = None
    archive_key_env: str | None = None
    archive_python: Any = None  # X.Y or a list: Pythons to carry packages for (default: this one)
    force: bool = False
    seed: int = 0
    dry_run: bool = False
    recipe: RecipeConfig | None = None  # set by a recipe file


def ctc_classes(symbols: list[str]) -> int:
    """Output classes of a CTC model: the vocabulary plus the blank."""
    return len(symbols) + 1


LABELS_DIR = project_folder("conf") / "labels"


def label_file(name: str) -> str:
    """The path of a label file the project ships (conf/labels/NAME), for `${label_file:NAME}`."""
    return str(LABELS_DIR / name)


def nlp_task(head: str, part: str) -> Any:
    """What an NLP pipeline's ensemble takes and gives, from its task's entry
    (triton_python/nlp_tasks.py), for `${nlp_task:HEAD,PART}`: `inputs` (its texts), `outputs`
    (the answer's tensors) or `text` (the input the answer points into)."""
    if head not in TASKS:
        raise UserError(f"model.head must be one of {', '.join(TASKS)}, got '{head}'")
    task = TASKS[head]
    parts = {
        "inputs": list(task.inputs),
        "outputs": [output.name for output in task.answer_outputs],
        "text": task.text,
    }
    if part not in parts:
        raise UserError(f"${{nlp_task:HEAD,PART}}: PART must be one of {', '.join(parts)}")
    # A list as a config node: OmegaConf.resolve (--cfg job --resolve) cannot put a plain list
    # where an interpolation stood.
    return OmegaConf.create(parts[part]) if part != "text" else parts[part]


def register_schema() -> None:
    from modelrepo_gen.config.nemo_resolver import register_nemo_resolver
    from modelrepo_gen.config.nemo_tts_resolver import register_nemo_tts_resolver

    ConfigStore.instance().store(name="build_schema", node=BuildConfig)
    OmegaConf.register_new_resolver("ctc_classes", ctc_classes, replace=True)
    OmegaConf.register_new_resolver("label_file", label_file, replace=True)
    OmegaConf.register_new_resolver("nlp_task", nlp_task, replace=True)
    OmegaConf.register_new_resolver("piper_voice", piper_voice_setting, replace=True)
    register_nemo_resolver()
    register_nemo_tts_resolver()
