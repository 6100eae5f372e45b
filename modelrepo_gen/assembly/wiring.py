"""Checks an ensemble against the parsed configs of the models it chains."""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2

from modelrepo_gen.core.errors import UserError

ModelConfig = model_config_pb2.ModelConfig


def _signature(tensor) -> tuple[int, tuple[int, ...]]:
    return tensor.data_type, tuple(tensor.dims)


def _describe(signature: tuple[int, tuple[int, ...]]) -> str:
    data_type, dims = signature
    return f"{model_config_pb2.DataType.Name(data_type)} {list(dims)}"


def check_ensemble(ensemble: ModelConfig, models: dict[str, ModelConfig]) -> None:
    """Every mapped tensor exists on both sides with the same data type and dims."""
    where = f"ensemble '{ensemble.name}'"
    available = {t.name: _signature(t) for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = models.get(step.model_name)
        if model is None:
            raise UserError(f"{where}: step uses model '{step.model_name}', which is not built")
        if model.max_batch_size < ensemble.max_batch_size:
            raise UserError(
                f"{where}: max_batch_size {ensemble.max_batch_size} exceeds model "
                f"'{model.name}' max_batch_size {model.max_batch_size}"
            )
        model_inputs = {t.name: _signature(t) for t in model.input}
        unmapped = set(model_inputs) - set(step.input_map)
        if unmapped:
            raise UserError(
                f"{where}: inputs {sorted(unmapped)} of model '{model.name}' are not fed"
            )
        for model_input, tensor in step.input_map.items():
            if model_input not in model_inputs:
                raise UserError(f"{where}: model '{model.name}' has no input '{model_input}'")
            if tensor not in available:
                raise UserError(
                    f"{where}: tensor '{tensor}' for '{model.name}.{model_input}' is produced by "
                    "no earlier step and is not an ensemble input"
                )
            if available[tensor] != model_inputs[model_input]:
                raise UserError(
                    f"{where}: tensor '{tensor}' is {_describe(available[tensor])} but "
                    f"'{model.name}.{model_input}' expects {_describe(model_inputs[model_input])}"
                )
        model_outputs = {t.name: _signature(t) for t in model.output}
        for model_output, tensor in step.output_map.items():
            if model_output not in model_outputs:
                raise UserError(f"{where}: model '{model.name}' has no output '{model_output}'")
            if tensor in available:
                raise UserError(f"{where}: tensor '{tensor}' is produced twice")
            available[tensor] = model_outputs[model_output]
    for output in ensemble.output:
        if output.name not in available:
            raise UserError(f"{where}: output '{output.name}' is produced by no step")
        if available[output.name] != _signature(output):
            raise UserError(
                f"{where}: output '{output.name}' is declared {_describe(_signature(output))} "
                f"but produced as {_describe(available[output.name])}"
            )
