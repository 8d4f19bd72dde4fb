"""One forwarding attempt to one upstream: the HTTP mechanics, kept apart from the policy.

An attempt ends in one of three ways, and :mod:`serve.chat` decides what each means:

* :class:`Failure`: the provider did not answer (connection error, timeout, a missing API key,
  HTTP 401/403/404/408/429 or 5xx, a 2xx body that is not a completion, a stream that never sent
  a byte). Nothing has reached the client yet, so the next candidate may be tried.
* :class:`Completion`: a whole body the client receives as it came: a 2xx answer, or the
  provider's verdict on the request itself (400, 413, 422, ...), which another provider would
  most likely give too.
* :class:`OpenStream`: a 2xx ``text/event-stream`` whose first bytes have arrived. From here on
  the attempt is committed: bytes are relayed as they come and a later failure cannot fail over.

Why 404 fails over: the client never named the upstream model (``autoray/auto``) or named it by
autoray's label, so a 404 says the configured endpoint or wire name is wrong, a fault of that
entry that another candidate does not share.

The API key is read at call time (:func:`autoray.settings.read_secret`), sent only upstream, and
removed from every reason and error text that could reach a log or a client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from autoray.settings import read_secret
from serve.errors import error_body
from serve.upstreams import Upstream

logger = logging.getLogger(__name__)

FAILOVER_STATUSES = frozenset({401, 403, 404, 408, 429})
"""4xx answers that are the provider's or its configuration's fault (5xx always are)."""

_EXCERPT_CHARS = 200
_MAX_PARTIAL_LINE = 1 << 20
_REDACTED = "***"
_EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that did not answer; ``reason`` names the model and is safe to show."""

    reason: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole upstream body to pass on: a 2xx answer (``usage`` read from it) or a client error."""

    status: int
    content: bytes
    media_type: str
    usage: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class OpenStream:
    """A committed upstream stream: ``first`` has arrived; :meth:`relay` yields it and the rest."""

    response: httpx.Response
    first: bytes
    rest: AsyncIterator[bytes]
    label: str

    async def relay(self, tap: UsageTap) -> AsyncIterator[bytes]:
        """The bytes as they arrive; a mid-stream failure ends it with an SSE error event, which
        OpenAI clients raise, rather than a silent cut. Closes the upstream however it ends."""
        try:
            tap.feed(self.first)
            yield self.first
            async for data in self.rest:
                tap.feed(data)
                yield data
        except httpx.HTTPError as exc:
            logger.warning("model %s: its stream broke off: %s", self.label, _describe(exc))
            yield _sse_error(f"model {self.label!r} stopped mid-stream ({type(exc).__name__})")
        finally:
            await self.close()

    async def close(self) -> None:
        await self.response.aclose()


class UsageTap:
    """Watches server-sent events as they pass for a ``usage`` object, holding one partial line
    at most: the stream is relayed, never buffered."""

    def __init__(self) -> None:
        self._partial = b""
        self.usage: Mapping[str, Any] | None = None

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        partial = lines.pop()
        self._partial = partial if len(partial) <= _MAX_PARTIAL_LINE else b""
        for line in lines:
            self._read(line.strip())

    def _read(self, line: bytes) -> None:
        if not line.startswith(b"data:") or b'"usage"' not in line:
            return
        try:
            event = json.loads(line[len(b"data:") :])
        except ValueError:
            return
        usage = event.get("usage") if isinstance(event, dict) else None
        if isinstance(usage, dict):
            self.usage = usage


async def complete(
    http: httpx.AsyncClient, upstream: Upstream, payload: dict[str, Any]
) -> Completion | Failure:
    """POST a non-streaming request; the whole body is read before anything is decided."""
    key = _api_key(upstream)
    if isinstance(key, Failure):
        return key
    try:
        response = await http.post(
            upstream.chat_url, json=payload, headers=_headers(key), timeout=upstream.timeout_s
        )
    except httpx.HTTPError as exc:
        return _transport_failure(upstream, exc, key)
    return _judge_body(upstream, response, key)


async def open_stream(
    http: httpx.AsyncClient, upstream: Upstream, payload: dict[str, Any]
) -> OpenStream | Completion | Failure:
    """Send a streaming request and wait for its first bytes; fail over until they arrive."""
    key = _api_key(upstream)
    if isinstance(key, Failure):
        return key
    request = http.build_request(
        "POST", upstream.chat_url, json=payload, headers=_headers(key), timeout=upstream.timeout_s
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        return _transport_failure(upstream, exc, key)
    if not response.is_success or not _is_event_stream(response):
        return await _judge_unstreamed(upstream, response, key)
    return await _first_bytes(upstream, response, key)


async def _first_bytes(
    upstream: Upstream, response: httpx.Response, key: str | None
) -> OpenStream | Failure:
    rest = response.aiter_bytes()
    try:
        first = await anext(rest)
    except StopAsyncIteration:
        await response.aclose()
        return Failure(f"model {upstream.label!r}: its stream ended before any byte")
    except httpx.HTTPError as exc:
        await response.aclose()
        return _transport_failure(upstream, exc, key)
    return OpenStream(response, first, rest, upstream.label)


async def _judge_unstreamed(
    upstream: Upstream, response: httpx.Response, key: str | None
) -> Completion | Failure:
    """An upstream that answered a stream request with an error, or with no stream at all."""
    try:
        await response.aread()
    except httpx.HTTPError as exc:
        return _transport_failure(upstream, exc, key)
    finally:
        await response.aclose()
    if response.is_success:
        kind = response.headers.get("content-type", "no content type")
        return Failure(f"model {upstream.label!r}: answered a stream request with {kind}")
    return _judge_body(upstream, response, key)


def fails_over(status: int) -> bool:
    """True for answers another candidate may do better on: 5xx, the listed 4xx, and anything
    that is neither success nor a client error (an unfollowed redirect means a wrong base URL)."""
    return status in FAILOVER_STATUSES or not 200 <= status < 500


def _judge_body(
    upstream: Upstream, response: httpx.Response, key: str | None
) -> Completion | Failure:
    status = response.status_code
    if fails_over(status):
        excerpt = _redact(response.text[:_EXCERPT_CHARS], key)
        return Failure(
            f"model {upstream.label!r}: HTTP {status} from its provider: {excerpt}", status
        )
    media_type = response.headers.get("content-type", "application/json")
    if status >= 400:
        return Completion(status, response.content, media_type)
    data = _json_or_none(response.content)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        excerpt = _redact(response.text[:_EXCERPT_CHARS], key)
        return Failure(f"model {upstream.label!r}: its answer is not a chat completion: {excerpt}")
    usage = data.get("usage")
    return Completion(
        status, response.content, media_type, usage if isinstance(usage, dict) else None
    )


def normalised_error(status: int, content: bytes, *, label: str) -> dict[str, Any]:
    """An upstream's error body in OpenAI's shape, whatever shape it came in.

    An OpenAI-shaped body keeps its message, type, param and code; anything else (FastAPI's
    ``detail``, a bare ``{"error": "text"}``, plain text) becomes the message, prefixed with the
    model and the status so the client knows who said it.
    """
    data = _json_or_none(content)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error_body(
            error["message"],
            param=_text_or_none(error.get("param")),
            code=_text_or_none(error.get("code")),
            type_=_text_or_none(error.get("type")) or "invalid_request_error",
        )
    detail = error if isinstance(error, str) else None
    if detail is None and isinstance(data, dict):
        detail = _text_or_none(data.get("detail") or data.get("message"))
    text = detail or content[:_EXCERPT_CHARS].decode("utf-8", "replace").strip() or "(no body)"
    return error_body(f"model {label!r} answered HTTP {status}: {text}", code="upstream_error")


def _headers(key: str | None) -> dict[str, str]:
    """Only what the upstream needs: the client's own headers (its autoray key) never go on."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def _api_key(upstream: Upstream) -> str | Failure | None:
    """The key, read now (a rotated key is used at once); None for a keyless (simulated) entry,
    a failure when the variable the entry names is not set."""
    if upstream.api_key_env is None:
        return None
    key = read_secret(upstream.api_key_env)
    if key is not None:
        return key
    return Failure(
        f"model {upstream.label!r}: the API key variable {upstream.api_key_env!r} is not set "
        f"where autoray serves; export {upstream.api_key_env}=<key> for the Serve replicas"
    )


def _transport_failure(upstream: Upstream, exc: httpx.HTTPError, key: str | None) -> Failure:
    logger.info("model %s at %s: %s", upstream.label, upstream.chat_url, _describe(exc))
    if isinstance(exc, httpx.TimeoutException):
        return Failure(f"model {upstream.label!r}: no answer within {upstream.timeout_s:g} s")
    return Failure(_redact(f"model {upstream.label!r}: {_describe(exc)}", key))


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith(_EVENT_STREAM)


def _sse_error(message: str) -> bytes:
    body = error_body(message, code="upstream_error", type_="server_error")
    return f"data: {json.dumps(body)}\n\n".encode()


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _text_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, _REDACTED) if key else text
