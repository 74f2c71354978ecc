"""Running the service: tokens, sandboxes and the app under uvicorn; MCP on stdio.

uvicorn handles SIGTERM and Ctrl-C: it stops accepting, gives open requests a few seconds,
then the app's lifespan removes every sandbox the service made (``Sandboxes.close``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from .sandboxes import Sandboxes
from .tokens import MIN_TOKEN_LENGTH, TokenFileError, load_token_file

GRACEFUL_SHUTDOWN = 5
"""Seconds open requests get when the service is told to stop."""


def default_token_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "ai-computer" / "tokens"


def serve(
    *,
    host: str,
    port: int,
    token_file: str | None,
    give_tokens_to_anyone: bool,
    extra_tokens: list[str] | None = None,
    max_sandboxes: int,
    per_token: int,
    idle_timeout: float | None,
    prestart: int,
    options: dict[str, Any],
) -> int:
    """Serve until SIGTERM or Ctrl-C; return the exit status."""
    import uvicorn

    from .app import ServiceSettings, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    extra_tokens = list(extra_tokens or [])
    short = [token for token in extra_tokens if len(token) < MIN_TOKEN_LENGTH]
    if short:
        raise TokenFileError(f"a --token must have at least {MIN_TOKEN_LENGTH} characters")
    tokens, created = list(extra_tokens), None
    path = Path(token_file) if token_file else default_token_file()
    if token_file or not extra_tokens:
        from_file, created = load_token_file(path)
        tokens += from_file
    if created is not None:
        print(f"ai-computer serve: created {path} with a new token (shown only now):", flush=True)
        print(created, flush=True)
    upload_limit = Sandboxes.upload_limit(options)
    settings = ServiceSettings(
        tokens,
        give_tokens_to_anyone=give_tokens_to_anyone,
        upload_limit=upload_limit,
        host=host,
    )
    sandboxes = Sandboxes(
        options,
        max_sandboxes=max_sandboxes,
        per_token=per_token,
        idle_timeout=idle_timeout,
        prestart=prestart,
    )
    app = create_app(settings, sandboxes)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,  # ours leaves query strings out (file paths)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        log_level="info",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0


def serve_mcp_stdio(options: dict[str, Any]) -> int:
    """The MCP server on stdin/stdout until the session ends; its sandbox is then removed."""
    from ..sdk.client import SandboxClient
    from .mcp import run_stdio

    # stdout is the protocol's: logs go to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    SandboxClient(**options)  # a bad limit fails here, before the session starts
    asyncio.run(run_stdio(lambda: SandboxClient(**options)))
    return 0
