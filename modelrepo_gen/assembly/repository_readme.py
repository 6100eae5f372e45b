"""The README.md at a repository's root: what it serves, with a Mermaid picture of the ensemble
as the pipeline declares it (where the target runs every step in one model, it says so).

Made from templates/repository_readme.md.j2; deterministic like every other file the build
writes. Each edge of the picture is one ensemble tensor with its type and dims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelrepo_gen.assembly.render import ENVIRONMENT
from modelrepo_gen.core.build_plan import BuildPlan, TensorSpec

README = "README.md"


@dataclass(frozen=True)
class Edge:
    source: str  # Mermaid node id
    target: str
    tensor: TensorSpec  # named as the ensemble names it


def node_id(kind: str, name: str) -> str:
    """A Mermaid node id: letters, digits and '_' only."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"


def ensemble_edges(plan: BuildPlan) -> list[Edge]:
    """Every tensor of the ensemble as an edge from its producer to each reader, in step order."""
    units = {unit.name: unit for unit in plan.units}
    origin = {t.name: (node_id("in", t.name), t) for t in plan.ensemble.inputs}
    edges = []
    for step in plan.ensemble.steps:
        unit = units[step.model_name]
        target = node_id("model", unit.name)
        for _, tensor in step.input_map:
            source, spec = origin[tensor]
            edges.append(Edge(source, target, TensorSpec(tensor, spec.data_type, spec.dims)))
        served = {spec.name: spec for spec in unit.outputs}
        for model_output, tensor in step.output_map:
            origin[tensor] = (target, served[model_output])
    for output in plan.ensemble.outputs:
        source, spec = origin[output.name]
        edges.append(Edge(source, node_id("out", output.name), output))
    return edges


def render_repository_readme(plan: BuildPlan) -> str:
    merged = (
        {step.model_name for step in plan.served_ensemble.steps} if plan.served_ensemble else set()
    )
    return ENVIRONMENT.get_template("repository_readme.md.j2").render(
        plan=plan,
        edges=ensemble_edges(plan),
        node_id=node_id,
        drawn=[unit for unit in plan.units if unit.name not in merged],
        merged=sorted(merged),
    )
