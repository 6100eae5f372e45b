"""Checks of the top-level build settings that every pipeline shares, before any work."""

from __future__ import annotations

from omegaconf import DictConfig

from modelrepo_gen.core.build_plan import BuildPlan
from modelrepo_gen.core.validation import check_number, require

INT32_MAX = 2**31 - 1  # Triton's config fields for sizes and counts are int32
SEED_MAX = 2**63 - 1  # torch.manual_seed takes a 64-bit seed
PARITY_MAX_SECONDS = 300  # a parity shape longer than this only costs build time and memory


def check_recipe_fits(cfg: DictConfig) -> None:
    """A recipe (+recipe=NAME) made for other pipelines is one line saying so, before its
    settings fail somewhere less clear (a model role this pipeline does not have, say)."""
    recipe = cfg.get("recipe")
    if recipe is None or not recipe.fits:
        return
    family = cfg.pipeline.get("family")
    kind = f"a {family} pipeline" if family else "a pipeline of no stated family"
    require(
        family in recipe.fits,
        f"recipe {recipe.name} is made for {' and '.join(recipe.fits)} pipelines; "
        f"pipeline={cfg.pipeline.get('name')} is {kind} (leave the recipe out, or set what "
        "you need yourself)",
    )


def check_build_settings(cfg: DictConfig) -> None:
    """Raise UserError naming the first top-level setting that cannot work."""
    check_number("max_batch_size", cfg.max_batch_size, at_least=1, at_most=INT32_MAX)
    check_number("seed", cfg.seed, at_least=0, at_most=SEED_MAX)
    check_number(
        f"precision.parity_tolerance (precision={cfg.precision.name})",
        cfg.precision.parity_tolerance,
        at_least=0,
        unit="(largest relative error of an export)",
    )
    require(
        len(cfg.parity_shapes) >= 2,
        f"parity_shapes needs at least two shapes (batch and length both vary), "
        f"got {len(cfg.parity_shapes)}",
    )
    for i, shape in enumerate(cfg.parity_shapes):
        check_number(f"parity_shapes.{i}.batch", shape.batch, at_least=1)
        check_number(
            f"parity_shapes.{i}.seconds",
            shape.seconds,
            above=0,
            at_most=PARITY_MAX_SECONDS,
            unit="seconds (each shape runs through PyTorch and the export in this process)",
        )
        if shape.get("tokens") is not None:
            check_number(f"parity_shapes.{i}.tokens", shape.tokens, at_least=1)


def check_parity_tokens(cfg: DictConfig, models: list[str]) -> None:
    """Networks that take token ids are checked at token lengths, which every shape must give;
    `models`: the roles of those networks."""
    if not models:
        return
    for i, shape in enumerate(cfg.parity_shapes):
        require(
            shape.get("tokens") is not None,
            f"parity_shapes.{i}.tokens must be set: model '{models[0]}' takes token ids "
            "(e.g. parity_shapes=[{batch:1,tokens:9},{batch:3,tokens:31}])",
        )


def check_parity_batches(cfg: DictConfig, plan: BuildPlan) -> None:
    """A parity batch no exported model accepts checks nothing the server will run."""
    largest = max((u.serving.max_batch_size for u in plan.units if u.export), default=None)
    if largest is None:
        return
    for i, shape in enumerate(cfg.parity_shapes):
        check_number(
            f"parity_shapes.{i}.batch",
            shape.batch,
            at_least=1,
            at_most=largest,
            unit=f"(the largest max_batch_size of an exported model, {largest})",
        )
