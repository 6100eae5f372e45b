"""The human-readable build plan printed by dry_run=true."""

from __future__ import annotations

from pathlib import Path

from modelrepo_gen.assembly.render import ENVIRONMENT
from modelrepo_gen.core.build_plan import BuildPlan


def describe_plan(plan: BuildPlan, repository: Path) -> str:
    return ENVIRONMENT.get_template("plan.txt.j2").render(plan=plan, repository=repository)
