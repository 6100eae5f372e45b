"""Clients of a served repository (transcription over HTTP or gRPC) and the in-process
PyTorch reference they are compared with."""
