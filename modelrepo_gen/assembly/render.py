"""Renders config.pbtxt text from templates/ and parses it back with Triton's own schema."""

from __future__ import annotations

from google.protobuf import text_format
from jinja2 import Environment
from tritonclient.grpc import model_config_pb2

from modelrepo_gen.core.build_plan import Ensemble, ModelUnit
from modelrepo_gen.core.errors import UserError
from modelrepo_gen.core.resources import project_folder
from modelrepo_gen.core.templates import template_environment

TEMPLATES_DIR = project_folder("templates")


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def mermaid_text(value: str) -> str:
    """Text inside a quoted Mermaid label (quotes and angle brackets as entity codes)."""
    return str(value).replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _environment() -> Environment:
    return template_environment(
        TEMPLATES_DIR, {"pbtxt_string": pbtxt_string, "mermaid": mermaid_text}
    )


ENVIRONMENT = _environment()


def parse_model_config(text: str, where: str) -> model_config_pb2.ModelConfig:
    """Parse with Triton's ModelConfig proto: unknown fields and bad enum values fail here."""
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise UserError(
            f"{where}: config.pbtxt does not fit Triton's ModelConfig schema: {exc}"
        ) from None


def render_model_config(unit: ModelUnit, pipeline: str) -> str:
    return ENVIRONMENT.get_template("model_config.pbtxt.j2").render(unit=unit, pipeline=pipeline)


def render_ensemble_config(ensemble: Ensemble, pipeline: str) -> str:
    return ENVIRONMENT.get_template("ensemble.pbtxt.j2").render(
        ensemble=ensemble, pipeline=pipeline
    )


def render_execution_env(env_file: str) -> str:
    """The config.pbtxt lines that run a python model in the repository's packed environment."""
    return ENVIRONMENT.get_template("execution_env.pbtxt.j2").render(env_file=env_file)


def render_env_activate(python: str) -> str:
    """bin/activate of a packed python environment (Triton sources it before the stub)."""
    return ENVIRONMENT.get_template("python_env_activate.sh.j2").render(python=python)
