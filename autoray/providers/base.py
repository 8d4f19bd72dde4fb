"""The provider interface: one synchronous chat call, whatever serves the model.

The lane runs one case at a time, so providers are plain synchronous clients. Both kinds of
model entry go through the same OpenAI-compatible client: a real endpoint with its API key, or
the simulated model farm on loopback with no key. Keeping a single wire path means the farm
exercises exactly the code that talks to real models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from autoray.errors import ConfigError

if TYPE_CHECKING:
    from autoray.config import ModelEntry
    from autoray.providers.openai import OpenAIProvider


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is already parsed from its JSON string."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """One model reply with its usage; ``cost_usd`` is None when neither usage nor prices tell."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    model: str
    system_fingerprint: str | None
    finish_reason: str | None


class Provider(Protocol):
    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ChatResponse: ...

    def close(self) -> None: ...


def wire_model_name(entry: ModelEntry) -> str:
    """The ``model`` sent on the wire.

    The simulated farm serves every (id, variant) pair as its own model, named ``id@variant``
    (or ``id`` without a variant); a real endpoint gets ``api_model`` or the id.
    """
    if entry.provider == "simulated":
        return f"{entry.id}@{entry.variant}" if entry.variant else entry.id
    return entry.api_model or entry.id


def create_provider(entry: ModelEntry, *, sim_url: str | None = None) -> OpenAIProvider:
    """Build the provider for a model entry; simulated entries need the farm's URL."""
    from autoray.providers.openai import OpenAIProvider

    if entry.provider == "simulated":
        if not sim_url:
            raise ConfigError(
                f"model {entry.key.label()!r} is simulated but no simulated farm URL was given; "
                "start one with `autoray sim serve CONFIG` and set AUTORAY_SIM_URL, "
                "or let the command start one"
            )
        return OpenAIProvider(entry, base_url=sim_url, api_key_env=None)
    if not entry.base_url:
        raise ConfigError(
            f"model {entry.key.label()!r} uses provider 'openai' but has no base_url; "
            "set base_url (e.g. 'https://api.openai.com/v1')"
        )
    return OpenAIProvider(entry, base_url=entry.base_url, api_key_env=entry.api_key_env)
