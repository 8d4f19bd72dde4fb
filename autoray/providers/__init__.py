"""Model providers: the interface, the ``openai`` client, and the SIMULATED model farm.

The farm's names (``build_farm_app``, ``serve_farm``, ``farm_url_for``) are loaded on first use:
they pull in FastAPI and uvicorn, which a lane that only calls models has no need to import.
"""

from __future__ import annotations

import importlib
from typing import Any

from autoray.providers.base import (
    ChatResponse,
    Provider,
    ToolCall,
    create_provider,
    wire_model_name,
)
from autoray.providers.openai import BackoffPolicy, OpenAIProvider

_FARM_NAMES = frozenset({"build_farm_app", "serve_farm", "farm_url_for"})

__all__ = [
    "BackoffPolicy",
    "ChatResponse",
    "OpenAIProvider",
    "Provider",
    "ToolCall",
    "build_farm_app",
    "create_provider",
    "farm_url_for",
    "serve_farm",
    "wire_model_name",
]


def __getattr__(name: str) -> Any:
    if name in _FARM_NAMES:
        return getattr(importlib.import_module("autoray.providers.simfarm"), name)
    raise AttributeError(f"module 'autoray.providers' has no attribute {name!r}")
