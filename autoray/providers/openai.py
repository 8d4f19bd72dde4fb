"""The ``openai`` provider: any OpenAI-compatible ``/chat/completions`` endpoint over httpx.

It is also the client of the simulated model farm, so the benchmark always talks HTTP the same
way. Retries are bounded (``max_retries``) with exponential backoff and jitter on 429, 5xx and
transport errors; other 4xx answers are the caller's mistake and are not retried. The API key is
read by name at call time and never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from autoray.errors import ProviderError
from autoray.providers.base import ChatResponse, ToolCall, wire_model_name
from autoray.settings import read_secret

if TYPE_CHECKING:
    from autoray.config import ModelEntry, PriceConfig

logger = logging.getLogger(__name__)

_EXCERPT_CHARS = 200
_REDACTED = "***"


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """When to retry a failed call and how long to wait first.

    ``Retry-After`` is honoured when it is at most ``retry_after_cap_s``; a longer one would
    stall the lane, so the exponential backoff is used instead.
    """

    max_retries: int
    base_s: float = 0.5
    cap_s: float = 8.0
    retry_after_cap_s: float = 30.0

    def should_retry(self, attempt: int, status: int | None) -> bool:
        """``status`` None means a transport error; ``attempt`` counts from 0."""
        if attempt >= self.max_retries:
            return False
        return status is None or status == 429 or status >= 500

    def delay_s(self, attempt: int, retry_after_s: float | None, jitter: float) -> float:
        if retry_after_s is not None and 0 <= retry_after_s <= self.retry_after_cap_s:
            return retry_after_s
        exponential = min(self.cap_s, self.base_s * 2**attempt)
        return exponential * (0.5 + jitter / 2)


class OpenAIProvider:
    """Synchronous client of one model on an OpenAI-compatible endpoint."""

    def __init__(
        self,
        entry: ModelEntry,
        *,
        base_url: str,
        api_key_env: str | None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._entry = entry
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key_env = api_key_env
        self._model = wire_model_name(entry)
        self._policy = BackoffPolicy(max_retries=entry.max_retries)
        self._sleep = sleep
        self._jitter = jitter
        self._client = httpx.Client(timeout=entry.timeout_s, transport=transport)

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self._model!r}, url={self._url!r})"

    def __enter__(self) -> OpenAIProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ChatResponse:
        key = self._api_key()
        body: dict[str, Any] = {"model": self._model, "messages": messages}
        if tools:
            body["tools"] = tools
        if metadata:
            body["metadata"] = dict(metadata)
        response = self._post_with_retries(body, key)
        return self._parse(response, key)

    def _api_key(self) -> str | None:
        if self._api_key_env is None:
            return None
        key = read_secret(self._api_key_env)
        if key is None:
            raise ProviderError(
                f"model {self._model!r}: the API key variable {self._api_key_env!r} is not set; "
                f"export {self._api_key_env}=<your key> before running"
            )
        return key

    def _post_with_retries(self, body: dict[str, Any], key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        attempt = 0
        while True:
            status, retry_after, failure = self._attempt(body, headers, key)
            if isinstance(failure, httpx.Response):
                return failure
            if not self._policy.should_retry(attempt, status):
                raise ProviderError(f"{failure} (after {attempt + 1} attempt(s))")
            delay = self._policy.delay_s(attempt, retry_after, self._jitter())
            logger.warning(
                "model %s: %s; retry %d of %d in %.2fs",
                self._model,
                failure,
                attempt + 1,
                self._policy.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _attempt(
        self, body: dict[str, Any], headers: dict[str, str], key: str | None
    ) -> tuple[int | None, float | None, httpx.Response | str]:
        """One POST: the response when it succeeded, else (status, Retry-After, reason)."""
        try:
            response = self._client.post(self._url, json=body, headers=headers)
        except httpx.TransportError as exc:
            reason = f"model {self._model!r} at {self._url}: {type(exc).__name__}: {exc}"
            return None, None, _redact(reason, key)
        if response.is_success:
            return response.status_code, None, response
        excerpt = _redact(response.text[:_EXCERPT_CHARS], key)
        reason = f"model {self._model!r} at {self._url}: HTTP {response.status_code}: {excerpt}"
        return response.status_code, _retry_after_s(response.headers), reason

    def _parse(self, response: httpx.Response, key: str | None) -> ChatResponse:
        try:
            return _parse_completion(response.json(), self._model, self._entry)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            excerpt = _redact(response.text[:_EXCERPT_CHARS], key)
            raise ProviderError(
                f"model {self._model!r} at {self._url}: malformed completion ({exc}); "
                f"body starts {excerpt!r}"
            ) from None


def _parse_completion(data: Any, model: str, entry: ModelEntry) -> ChatResponse:
    choice = data["choices"][0]
    message = choice["message"]
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise TypeError(f"message content is {type(content).__name__}, expected a string")
    usage = data.get("usage") or {}
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)
    return ChatResponse(
        content=content,
        tool_calls=tuple(_parse_tool_call(raw) for raw in message.get("tool_calls") or ()),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=usage_cost_usd(usage, entry.price, input_tokens, output_tokens),
        model=str(data.get("model") or model),
        system_fingerprint=data.get("system_fingerprint"),
        finish_reason=choice.get("finish_reason"),
    )


def _parse_tool_call(raw: Mapping[str, Any]) -> ToolCall:
    function = raw["function"]
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"tool call {function.get('name')!r} has arguments that are not JSON: {exc}"
            ) from None
    if not isinstance(arguments, dict):
        raise TypeError(f"tool call {function.get('name')!r} arguments are not a JSON object")
    return ToolCall(id=str(raw["id"]), name=str(function["name"]), arguments=arguments)


def usage_cost_usd(
    usage: Mapping[str, Any], price: PriceConfig | None, input_tokens: int, output_tokens: int
) -> float | None:
    """A provider-reported cost wins; else the configured prices, when usage was reported.

    Public because the Serve app prices the traffic it forwards the same way a benchmark does.
    """
    reported = usage.get("cost")
    if isinstance(reported, int | float) and not isinstance(reported, bool):
        return float(reported)
    if not usage or price is None:
        return None
    return price.cost_usd(input_tokens, output_tokens)


def _retry_after_s(headers: httpx.Headers) -> float | None:
    """Seconds from a ``Retry-After`` header; the HTTP-date form is ignored (backoff is used)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, _REDACTED) if key else text
