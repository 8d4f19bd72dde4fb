"""``POST /v1/chat/completions``: forward a chat to the model a decision chose, or one named.

With ``model: "autoray/auto"`` the caller (the ingress) has already classified and decided; this
module turns that outcome into an answer:

* candidates are the decision's model, then up to two alternatives of its route, in the order
  the mode prefers; each is tried until one answers, and only while nothing has been sent to the
  client (see :mod:`serve.forward` for what counts as a failure);
* the body goes upstream unchanged but for ``model`` (the upstream's wire name) and autoray's own
  decision fields (:data:`AUTORAY_BODY_FIELDS`), which an OpenAI endpoint would reject;
* the answer carries ``x-autoray-model`` (who answered), ``x-autoray-route``,
  ``x-autoray-table-version`` and ``x-autoray-fallbacks`` (attempts that failed first);
* a null decision goes to the configured fallback model (``x-autoray-fallback: null-decision``),
  else answers 503 with the decision's reason as the error code;
* every error is in OpenAI's shape, so OpenAI clients show its message.

A named model (anything but ``autoray/auto``) is passed through to that model alone: its body
is forwarded as sent, but for the wire name.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from autoray.providers.openai import usage_cost_usd
from autoray.results import ModelKey
from serve.errors import openai_error
from serve.forward import (
    Completion,
    Failure,
    OpenStream,
    UsageTap,
    complete,
    normalised_error,
    open_stream,
)
from serve.upstreams import Upstream, UpstreamResolver, model_label

if TYPE_CHECKING:
    from autoray.decision import DecisionOutcome

logger = logging.getLogger(__name__)

AUTO_MODEL = "autoray/auto"
AUTORAY_BODY_FIELDS = frozenset({"session_id", "denied_models", "mode", "constraints"})
"""Request fields the decision reads; they are autoray's, so they are not sent upstream."""

MAX_ATTEMPTS = 3
"""The chosen model and at most two more: a third failure in a row is an outage, not bad luck."""

MODEL_HEADER = "x-autoray-model"
ROUTE_HEADER = "x-autoray-route"
VERSION_HEADER = "x-autoray-table-version"
FALLBACKS_HEADER = "x-autoray-fallbacks"
FALLBACK_HEADER = "x-autoray-fallback"
NULL_DECISION = "null-decision"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one forwarded answer; ``model`` is the label of the model that
    answered, ``route`` None for a named model. ``cost_usd`` None when no price applies."""

    model: str
    route: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


@dataclass
class ChatDeps:
    """What forwarding needs from the replica; built once, ``upstreams`` swapped on reload."""

    http: httpx.AsyncClient
    upstreams: UpstreamResolver
    fallback_model: str | None
    on_usage: Callable[[Usage], None]


async def handle_chat(
    body: dict[str, Any],
    *,
    outcome: DecisionOutcome | None,
    route: str | None,
    table_version: str | None,
    deps: ChatDeps,
) -> Response:
    """Answer one chat request; ``outcome`` None means the client named its model."""
    if outcome is None:
        return await _passthrough(body, deps)
    stamp = _decision_headers(route, table_version)
    payload = {name: value for name, value in body.items() if name not in AUTORAY_BODY_FIELDS}
    if outcome.decision is None:
        return await _null_decision(payload, outcome, stamp, route, deps)
    keys = [outcome.decision.key, *(candidate.key for candidate in outcome.alternatives)]
    targets = [_target(key, deps.upstreams) for key in keys]
    return await _forward(payload, targets, stamp, route, deps)


async def _passthrough(body: dict[str, Any], deps: ChatDeps) -> Response:
    name = body.get("model")
    upstream = deps.upstreams.by_name(name) if isinstance(name, str) else None
    if upstream is None:
        served = ", ".join([AUTO_MODEL, *deps.upstreams.names()])
        return openai_error(
            404,
            f"the model {name!r} is not served here; use one of: {served}",
            param="model",
            code="model_not_found",
        )
    return await _forward(body, [upstream], {}, None, deps)


async def _null_decision(
    payload: dict[str, Any],
    outcome: DecisionOutcome,
    stamp: dict[str, str],
    route: str | None,
    deps: ChatDeps,
) -> Response:
    """No model for this request: the fallback model if one is configured and served, else 503
    with the decision's reason, so the client learns why rather than a bare failure."""
    reason = outcome.reason.value if outcome.reason else "no_decision"
    name = deps.fallback_model
    fallback = deps.upstreams.by_name(name) if name else None
    if fallback is not None:
        headers = {**stamp, FALLBACK_HEADER: NULL_DECISION}
        return await _forward(payload, [fallback], headers, route, deps)
    if name:
        fix = f"the fallback model {name!r} is not served here either; fix fallback_model"
    else:
        fix = "set fallback_model in the app's arguments to answer such requests anyway"
    message = f"no model for this request ({reason}): {outcome.message or reason}; {fix}"
    return openai_error(503, message, code=reason, type_="server_error", headers=stamp)


async def _forward(
    body: dict[str, Any],
    targets: Sequence[Upstream | Failure],
    stamp: dict[str, str],
    route: str | None,
    deps: ChatDeps,
) -> Response:
    """Try the targets in order until one answers; its answer (or error) is the response."""
    streaming = body.get("stream") is True
    failures: list[str] = []
    for target in targets[:MAX_ATTEMPTS]:
        if isinstance(target, Failure):
            _note(target, failures)
            continue
        result = await _attempt(body, target, streaming, deps.http)
        if isinstance(result, Failure):
            _note(result, failures)
            continue
        headers = {**stamp, MODEL_HEADER: target.label, FALLBACKS_HEADER: str(len(failures))}
        return _respond(result, target, route, headers, deps)
    return _all_failed(failures, {**stamp, FALLBACKS_HEADER: str(len(failures))})


async def _attempt(
    body: dict[str, Any], upstream: Upstream, streaming: bool, http: httpx.AsyncClient
) -> OpenStream | Completion | Failure:
    payload = {**body, "model": upstream.wire_model}
    return await (open_stream if streaming else complete)(http, upstream, payload)


def _target(key: ModelKey, upstreams: UpstreamResolver) -> Upstream | Failure:
    """A table model's endpoint, or the failure of having none (the run config that produced
    the table is gone, or an override removed it)."""
    upstream = upstreams.resolve(key)
    if upstream is not None:
        return upstream
    return Failure(
        f"model {model_label(key)!r}: no endpoint is configured for it; add its entry to the "
        "app's models (or keep the run that produced the table in the database)"
    )


def _note(failure: Failure, failures: list[str]) -> None:
    logger.warning("chat: %s; trying the next candidate if any", failure.reason)
    failures.append(failure.reason)


def _respond(
    result: OpenStream | Completion,
    upstream: Upstream,
    route: str | None,
    headers: dict[str, str],
    deps: ChatDeps,
) -> Response:
    if isinstance(result, OpenStream):
        return _relay(result, upstream, route, headers, deps)
    if not result.ok:
        error = normalised_error(result.status, result.content, label=upstream.label)
        return JSONResponse(error, status_code=result.status, headers=headers)
    if result.usage is not None:
        _report_usage(result.usage, upstream, route, deps)
    return Response(result.content, result.status, headers=headers, media_type=result.media_type)


def _relay(
    stream: OpenStream,
    upstream: Upstream,
    route: str | None,
    headers: dict[str, str],
    deps: ChatDeps,
) -> Response:
    tap = UsageTap()

    async def events() -> AsyncIterator[bytes]:
        async for data in stream.relay(tap):
            yield data
        if tap.usage is not None:
            _report_usage(tap.usage, upstream, route, deps)

    return _RelayResponse(
        events(),
        on_close=stream.close,
        headers={**headers, "cache-control": "no-cache"},
        media_type="text/event-stream",
    )


class _RelayResponse(StreamingResponse):
    """A stream that closes its upstream however it ends. A client that disconnects cancels the
    send loop without closing the generator; the upstream call would then run on until the
    generator is finalised by the garbage collector. Closing here makes it prompt and certain."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_close: Callable[[], Awaitable[None]],
        headers: Mapping[str, str],
        media_type: str,
    ) -> None:
        super().__init__(content, headers=headers, media_type=media_type)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


def _report_usage(
    usage: Mapping[str, Any], upstream: Upstream, route: str | None, deps: ChatDeps
) -> None:
    """Count tokens and cost; a provider's odd usage object is logged, never an error."""
    try:
        input_tokens = int(usage.get("prompt_tokens") or 0)
        output_tokens = int(usage.get("completion_tokens") or 0)
        cost = usage_cost_usd(usage, upstream.price, input_tokens, output_tokens)
    except (TypeError, ValueError) as exc:
        logger.warning("model %s: unreadable usage %r (%s)", upstream.label, usage, exc)
        return
    deps.on_usage(Usage(upstream.label, route, input_tokens, output_tokens, cost))


def _all_failed(failures: list[str], headers: dict[str, str]) -> Response:
    message = "no model could answer: " + "; ".join(failures)
    return openai_error(
        503, message, code="upstream_unavailable", type_="server_error", headers=headers
    )


def _decision_headers(route: str | None, table_version: str | None) -> dict[str, str]:
    headers = {ROUTE_HEADER: route, VERSION_HEADER: table_version}
    return {name: value for name, value in headers.items() if value}
