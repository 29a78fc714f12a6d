"""Starts Arize Phoenix (the local trace viewer) with every listener on loopback.

Phoenix binds its HTTP server (UI, REST API, OTLP/HTTP) to PHOENIX_HOST, but its OTLP/gRPC
receiver to every interface, with no setting to change that. The local stack must not
listen beyond 127.0.0.1, so this wrapper narrows the gRPC server's address before Phoenix
creates it, then runs `phoenix serve` unchanged.

Usage: <phoenix venv>/bin/python phoenix_loopback.py   (the PHOENIX_* variables configure it)
"""

import sys

import grpc.aio

_make_server = grpc.aio.server


def _on_loopback(address: str) -> str:
    # Phoenix asks for "[::]:<port>"; keep the port, drop the wildcard host.
    port = address.rsplit(":", 1)[-1]
    return f"127.0.0.1:{port}"


def _loopback_server(*args, **kwargs):
    server = _make_server(*args, **kwargs)
    insecure, secure = server.add_insecure_port, server.add_secure_port
    server.add_insecure_port = lambda address: insecure(_on_loopback(address))
    server.add_secure_port = lambda address, credentials: secure(
        _on_loopback(address), credentials
    )
    return server


grpc.aio.server = _loopback_server

from phoenix.server.main import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.argv = ["phoenix", "serve"]
    sys.exit(main())
