"""Client keys: when ``$AUTORAY_API_KEYS`` is set, every ``/v1`` route needs one as a bearer token.

The keys are read from the environment when a replica starts and live only in its memory: they
are never part of the app's arguments (which Serve stores and shows) and never logged. Usage is
counted per key under a short stable id (``key-1`` for the first key listed, ``key-2`` ...),
so a metric label never carries a secret and stays bounded by the number of keys.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from autoray.settings import read_secret

ANONYMOUS = "anonymous"
"""The key id of requests when no keys are configured."""

_BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """The accepted keys, in the order given; ``repr`` never shows them."""

    keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env_var: str) -> ClientKeys:
        """The keys in the variable named ``env_var`` (read as a secret, by name)."""
        return cls.parse(read_secret(env_var))

    @classmethod
    def parse(cls, raw: str | None) -> ClientKeys:
        """Comma-separated keys; None or blank means no keys are required."""
        return cls(tuple(key.strip() for key in (raw or "").split(",") if key.strip()))

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def identify(self, authorization: str | None) -> str | None:
        """The key id for an ``Authorization`` header, or None when it carries no valid key.

        Every key is compared in constant time, so timing does not reveal how much of a guess
        matched.
        """
        if not self.required:
            return ANONYMOUS
        token = _bearer_token(authorization)
        if token is None:
            return None
        found = None
        for index, key in enumerate(self.keys, start=1):
            if hmac.compare_digest(token.encode(), key.encode()):
                found = f"key-{index}"
        return found


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization or authorization[: len(_BEARER)].lower() != _BEARER:
        return None
    token = authorization[len(_BEARER) :].strip()
    return token or None
