"""Plan builders, registered by the `pipeline.kind` their conf/pipeline/ files name.

A builder turns the composed config into a BuildPlan. New pipelines of an existing kind are
YAML only (conf/pipeline/NAME.yaml); a new kind is one file here plus its registration.
"""

from collections.abc import Callable

from omegaconf import DictConfig

from modelrepo_gen.plan import BuildPlan
from modelrepo_gen.registry import Registry

PlanBuilder = Callable[[DictConfig], BuildPlan]
PLAN_BUILDERS: Registry[PlanBuilder] = Registry("pipeline kind")


def register_builtin_pipelines() -> None:
    from modelrepo_gen.pipelines import ctc_asr  # noqa: F401
