"""Calls to a Triton server shared by the clients: connect, ask for metadata, and turn every
client failure into one UserError line that says what failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelrepo_gen.clients.transcribe_args import PROTOCOLS, check_url
from modelrepo_gen.core.errors import UserError

REQUEST_TIMEOUT_S = 300.0  # long audio or long text on a CPU server takes a while


def client_module(protocol: str) -> Any:
    """tritonclient's module for the protocol; "in_process": a repository run in this process
    (clients/in_process_repository.py), which the same request code drives."""
    if protocol == "in_process":
        from modelrepo_gen.clients import in_process_repository as module
    elif protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise UserError(f"protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    return module


def connect(url: str, protocol: str) -> Any:
    """A client of the server at `url`; "in_process": `url` is a repository folder."""
    module = client_module(protocol)
    if protocol == "in_process":
        return module.InProcessRepository(url)
    # Checked here: a client built from a bad URL fails, then prints a traceback at exit.
    check_url(url)
    try:
        if protocol == "http":
            client = module.InferenceServerClient(
                url, connection_timeout=10.0, network_timeout=REQUEST_TIMEOUT_S
            )
        else:
            client = module.InferenceServerClient(url)
    except Exception as error:  # bad URL syntax and the like, raised by either client
        raise UserError(f"cannot connect to Triton at '{url}' over {protocol}: {error}") from None
    return client


def server_message(error: Exception) -> str:
    message = error.message() if hasattr(error, "message") else None
    text = " ".join(str(message or error).split())  # gRPC messages span lines
    if "Connection refused" in text:
        return f"{text} (is a Triton server running at this address?)"
    return text


# Triton's codes, as tritonclient's errors give them (status()): a bad request, a model that is
# not loaded (being reloaded, say), and the rest: a fault of the server.
_BAD_REQUEST = {"400": "HTTP 400", "StatusCode.INVALID_ARGUMENT": "gRPC INVALID_ARGUMENT"}
_UNAVAILABLE = {
    "404": "HTTP 404",
    "503": "HTTP 503",
    "StatusCode.NOT_FOUND": "gRPC NOT_FOUND",
    "StatusCode.UNAVAILABLE": "gRPC UNAVAILABLE",
}


def request_failure(model_name: str, error: Exception) -> str:
    """What a failed inference call means for the user, in one line: a request the model
    refused (sending it again will not help), a model not available now, a server fault
    (worth a retry), or no answer at all (a connection error)."""
    status = error.status() if hasattr(error, "status") else None
    status = str(status) if status else ""
    message = server_message(error)
    if status in _BAD_REQUEST:
        return (
            f"'{model_name}' refused the request ({_BAD_REQUEST[status]}, bad request): {message}"
        )
    if status in _UNAVAILABLE:
        return f"'{model_name}' is not available ({_UNAVAILABLE[status]}): {message}"
    if status:
        code = (
            f"HTTP {status}" if status.isdigit() else f"gRPC {status.removeprefix('StatusCode.')}"
        )
        return f"'{model_name}' failed ({code}, server fault): {message}"
    return f"'{model_name}' failed: {message}"


def ask(url: str, protocol: str, what: str, call: Callable[[], Any]) -> Any:
    """Run one metadata call, turning any client failure into a UserError."""
    try:
        return call()
    except UserError:
        raise
    except Exception as error:  # connection refused, timeouts, server errors: all user-facing
        raise UserError(
            f"Triton at '{url}' ({protocol}) failed to {what}: {server_message(error)}"
        ) from None


def model_config(client: Any, protocol: str, name: str) -> dict:
    if protocol == "grpc":
        return client.get_model_config(name, as_json=True).get("config", {})
    return client.get_model_config(name)


def ready_models(client: Any, protocol: str) -> list[str]:
    index = client.get_model_repository_index(**({"as_json": True} if protocol == "grpc" else {}))
    entries = index.get("models", []) if protocol == "grpc" else index
    return sorted({e["name"] for e in entries if e.get("state") == "READY"})


def ready_model_config(url: str, protocol: str, name: str) -> dict:
    """The config of model `name`, after checking that the server answers and the model is
    ready (else a UserError naming the ready models)."""
    client = connect(url, protocol)
    try:
        ask(url, protocol, "answer", client.is_server_live)
        if not ask(url, protocol, f"check '{name}'", lambda: client.is_model_ready(name)):
            ready = ask(url, protocol, "list its models", lambda: ready_models(client, protocol))
            raise UserError(
                f"model '{name}' is not ready on the server at '{url}' "
                f"(ready models: {', '.join(ready) or 'none'})"
            )
        return ask(
            url, protocol, f"describe '{name}'", lambda: model_config(client, protocol, name)
        )
    finally:
        client.close()
