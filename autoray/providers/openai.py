"""The ``openai`` provider: any OpenAI-compatible ``/chat/completions`` endpoint over httpx.

It is also the client of the simulated model farm, so the benchmark always talks HTTP the same
way. Retries are bounded (``max_retries``) with exponential backoff and jitter on 408, 429, 5xx
and transport errors; other 4xx answers are not retried. The API key is read by name at call
time and never appears in a message, a log line or a repr.

What a failure means decides where it goes (docs/ARCHITECTURE.md, failure boundaries):

* :class:`ProviderUnavailableError` (infrastructure: the lane's policy retries it, never a row):
  connection refused or reset, DNS, TLS, HTTP 401/403, 404 on the model, 408, 429 and 5xx once
  the retries here are spent, and a key variable that is not set;
* :class:`ProviderError` (the model's failure, a score-0 row): its own timeout (the endpoint
  read or write timed out on every attempt), a malformed completion or tool call, and the
  remaining 4xx verdicts on the request, such as a 400 that says the context is too long.
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

from autoray.errors import (
    AutorayError,
    ModelTimeoutError,
    ProviderError,
    ProviderUnavailableError,
)
from autoray.providers.base import ChatResponse, ToolCall, wire_model_name
from autoray.settings import read_secret

if TYPE_CHECKING:
    from autoray.config import ModelEntry, PriceConfig

logger = logging.getLogger(__name__)

_EXCERPT_CHARS = 200
_REDACTED = "***"
_PROBE_TIMEOUT_S = 15.0
_RETRIED_STATUSES = frozenset({408, 429})
_UNAVAILABLE_STATUSES = frozenset({401, 403, 404, 408, 429})
_NO_MODELS_LIST = frozenset({404, 405})
_MODEL_TIMEOUTS = (httpx.ReadTimeout, httpx.WriteTimeout)


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
        return status is None or status in _RETRIED_STATUSES or status >= 500

    def delay_s(self, attempt: int, retry_after_s: float | None, jitter: float) -> float:
        if retry_after_s is not None and 0 <= retry_after_s <= self.retry_after_cap_s:
            return retry_after_s
        exponential = min(self.cap_s, self.base_s * 2**attempt)
        return exponential * (0.5 + jitter / 2)


@dataclass(frozen=True, slots=True)
class _Failure:
    """One failed attempt: ``status`` None is a transport error; ``reason`` is key-free."""

    reason: str
    status: int | None = None
    retry_after_s: float | None = None
    model_timeout: bool = False

    @property
    def infrastructure(self) -> bool:
        """Whether the failure is the endpoint's, not the model's (see the module docstring)."""
        if self.status is None:
            return not self.model_timeout
        return self.status in _UNAVAILABLE_STATUSES or self.status >= 500

    def message(self, attempts: int) -> str:
        return f"{self.reason} (after {attempts} attempt(s))"

    def error(self, attempts: int) -> AutorayError:
        message = self.message(attempts)
        if self.infrastructure:
            return ProviderUnavailableError(message)
        return ModelTimeoutError(message) if self.model_timeout else ProviderError(message)


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
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/chat/completions"
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
        response = self._with_retries(lambda: self._post(body, key), key)
        return self._parse(response, key)

    def probe(self) -> None:
        """The preflight's one cheap call: ``GET {base_url}/models``, else (when the endpoint
        lists no models: 404 or 405) a 1-token completion.

        Raises :class:`ProviderUnavailableError` naming the endpoint and the status when the
        endpoint cannot be used (no key, unreachable, 401/403, 404 on the model, 429 or 5xx
        after the retries). Any other answer to the completion, a 400 included, passes: the
        endpoint was reached and took the key, which is all a preflight can know before a
        case runs (a reasoning model, for one, may refuse ``max_tokens``).
        """
        key = self._api_key()
        listed = self._attempts(lambda: self._get_models(key), key)
        if isinstance(listed, httpx.Response):
            return
        if listed[0].status not in _NO_MODELS_LIST:
            raise ProviderUnavailableError(listed[0].message(listed[1]))
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        }
        completed = self._attempts(lambda: self._post(body, key, _PROBE_TIMEOUT_S), key)
        if isinstance(completed, tuple) and completed[0].infrastructure:
            raise completed[0].error(completed[1])

    def _api_key(self) -> str | None:
        if self._api_key_env is None:
            return None
        key = read_secret(self._api_key_env)
        if key is None:
            raise ProviderUnavailableError(
                f"model {self._model!r}: the API key variable {self._api_key_env!r} is not set "
                f"where this runs; export {self._api_key_env}=<your key> in the environment of "
                "`ray start` on every node (or of the command, for a local Ray)"
            )
        return key

    def _with_retries(self, send: Callable[[], httpx.Response], key: str | None) -> httpx.Response:
        """The successful response, or the last failure as the error its kind calls for."""
        outcome = self._attempts(send, key)
        if isinstance(outcome, httpx.Response):
            return outcome
        failure, attempts = outcome
        raise failure.error(attempts)

    def _attempts(
        self, send: Callable[[], httpx.Response], key: str | None
    ) -> httpx.Response | tuple[_Failure, int]:
        """``send`` until it succeeds or the policy gives up: the response, or the last failure
        with the number of attempts made."""
        attempt = 0
        while True:
            outcome = self._attempt(send, key)
            if isinstance(outcome, httpx.Response):
                return outcome
            if not self._policy.should_retry(attempt, outcome.status):
                return outcome, attempt + 1
            delay = self._policy.delay_s(attempt, outcome.retry_after_s, self._jitter())
            logger.warning(
                "model %s: %s; retry %d of %d in %.2fs",
                self._model,
                outcome.reason,
                attempt + 1,
                self._policy.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _post(
        self, body: dict[str, Any], key: str | None, timeout_s: float | None = None
    ) -> httpx.Response:
        timeout = timeout_s if timeout_s is not None else self._entry.timeout_s
        return self._client.post(self._url, json=body, headers=_auth(key), timeout=timeout)

    def _get_models(self, key: str | None) -> httpx.Response:
        timeout = min(self._entry.timeout_s, _PROBE_TIMEOUT_S)
        return self._client.get(self._base_url + "/models", headers=_auth(key), timeout=timeout)

    def _attempt(
        self, send: Callable[[], httpx.Response], key: str | None
    ) -> httpx.Response | _Failure:
        """One request: the response when it succeeded, else what went wrong."""
        try:
            response = send()
        except httpx.TransportError as exc:
            where = exc.request.url if _has_request(exc) else self._url
            reason = f"model {self._model!r} at {where}: {type(exc).__name__}: {exc}"
            return _Failure(_redact(reason, key), model_timeout=isinstance(exc, _MODEL_TIMEOUTS))
        if response.is_success:
            return response
        excerpt = _redact(response.text[:_EXCERPT_CHARS], key)
        reason = (
            f"model {self._model!r} at {response.request.url}: "
            f"HTTP {response.status_code}: {excerpt}"
        )
        return _Failure(reason, response.status_code, _retry_after_s(response.headers))

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


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises when the error carries no request
    except RuntimeError:
        return False
    return True


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, _REDACTED) if key else text
