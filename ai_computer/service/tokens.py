"""Bearer tokens of the service: where they come from and how a request's is checked.

A token is a secret; the service knows a caller only by its token's ``owner`` (a digest), which
is what quotas count and logs name. Every check compares against every token in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from ..errors import SandboxError

MIN_TOKEN_LENGTH = 16


class TokenFileError(SandboxError):
    """The token file cannot be used (unreadable, open to other users, no token in it)."""


def owner_of(token: str) -> str:
    """The name a token goes by in quotas, metrics and logs (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def load_token_file(path: Path) -> tuple[list[str], str | None]:
    """The tokens in ``path`` (one per line, ``#`` comments), and a new token when the file
    did not exist: it is then created with that token, mode 0600, for the caller to print once.

    A file other users can read or write is refused, as ssh refuses such a key.
    """
    if not path.exists():
        token = new_token()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("# ai-computer serve: one bearer token per line\n" + token + "\n")
        return [token], token
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(
            f"token file {path} is open to other users (mode {stat.filemode(mode)}); "
            f"run `chmod 600 {path}`"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc}") from exc
    tokens = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    short = [index for index, token in enumerate(tokens, 1) if len(token) < MIN_TOKEN_LENGTH]
    if short:
        raise TokenFileError(
            f"token file {path}: token {short[0]} is shorter than {MIN_TOKEN_LENGTH} characters"
        )
    if not tokens:
        raise TokenFileError(f"token file {path} holds no token (one per line)")
    return tokens, None


MAX_GIVEN_TOKENS = 1000
"""Most tokens ``/dev/token`` hands out in one run of the service."""


class TokenLimitError(SandboxError):
    """``/dev/token`` has handed out its most tokens."""


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class Tokens:
    """The tokens the service accepts: those it was started with, plus any ``/dev/token``
    handed out (only when the service was started to give tokens to anyone, at most
    ``MAX_GIVEN_TOKENS``).

    Kept by their SHA-256: a request's token is hashed, looked up, and the stored token
    compared in constant time, so the check costs the same however many tokens there are.
    """

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = {_digest(token.encode()): token.encode() for token in tokens}
        self._given = 0

    def add_new(self) -> str:
        if self._given >= MAX_GIVEN_TOKENS:
            raise TokenLimitError(
                f"this server has handed out its most tokens ({MAX_GIVEN_TOKENS}); restart it, "
                "or use a token from its token file"
            )
        token = new_token()
        self._tokens[_digest(token.encode())] = token.encode()
        self._given += 1
        return token

    def owner(self, authorization: str | None) -> str | None:
        """The owner of a request's ``Authorization: Bearer <token>``, or None."""
        if not authorization:
            return None
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        candidate = given.strip().encode("utf-8", "surrogateescape")
        known = self._tokens.get(_digest(candidate), b"")
        return owner_of(given.strip()) if hmac.compare_digest(candidate, known) else None
