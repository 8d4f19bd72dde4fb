"""The Serve application: a FastAPI ingress deployment, built by :func:`build_app` from typed args.

Routes (every ``/v1`` route answers errors in OpenAI's shape, and needs a client key when
``$AUTORAY_API_KEYS`` is set)::

    POST   /v1/decide               classify + decide; the decision, or null with a reason
    POST   /v1/chat/completions     model "autoray/auto": decide, then forward (see serve.chat)
    GET    /v1/models               autoray/auto and the active table's models
    GET    /v1/routing-table        the active table (404 when none is)
    GET    /v1/sessions/{id}        a session's sticky model (404 when unknown or expired)
    DELETE /v1/sessions/{id}        forget it (204)
    GET    /healthz                 liveness, with the table version and the last check's error

The replica is a thin shell: the decision is :mod:`autoray.decision`, the decide path
:mod:`serve.decisions`, forwarding :mod:`serve.chat`; what lives here is wiring, start and stop.

Run it with ``autoray serve``, ``serve run serve.app:build_app database_url=...`` or
``serve deploy serve/config.yaml``.
"""

# No ``from __future__ import annotations`` here: Serve pickles the ingress class by value, and
# FastAPI must still resolve the handlers' annotations (``Request``) from real objects.
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from ray import serve
from starlette.exceptions import HTTPException
from starlette.responses import Response

from actors.table_events import events_actor
from autoray.cache import TTLCache
from autoray.classify import Classifier
from autoray.config import ModelEntry
from autoray.decision import parse_denied
from autoray.results import ModelKey
from autoray.settings import Settings, resolve_database_url
from serve.args import AppArgs
from serve.auth import ClientKeys
from serve.chat import AUTO_MODEL, FALLBACK_HEADER, FALLBACKS_HEADER, ChatDeps, Usage, handle_chat
from serve.decisions import DecisionInput, DecisionResult, DecisionService, NoUserTextError
from serve.errors import json_response, openai_error
from serve.metrics import ServeMetrics
from serve.schemas import (
    ERROR_RESPONSES,
    MAX_SESSION_ID_CHARS,
    BodyError,
    ChatRequestShape,
    DecideRequest,
    DecideResponse,
    DecisionOptions,
    SessionBody,
    format_loc,
    openapi_components,
    openapi_request_body,
    parse_json_body,
    validate_body,
)
from serve.sessions import SessionClient
from serve.tables import LoadedTable, TableWatcher, merge_entries
from serve.upstreams import UpstreamResolver, model_label, simulated_farm_for

logger = logging.getLogger("autoray.serve")

SESSION_HEADER = "x-autoray-session"
API_TITLE = "autoray"
_HTTP_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)

api = FastAPI(
    title=API_TITLE,
    summary="Routing decisions and an OpenAI-compatible endpoint that routes (autoray/auto).",
    version="1",
)


# --- OpenAPI and error handlers -----------------------------------------------------------


def _openapi() -> dict[str, Any]:
    """FastAPI's schema plus the request bodies the handlers read themselves."""
    if api.openapi_schema is None:
        schema = get_openapi(
            title=API_TITLE, version=api.version, summary=api.summary, routes=api.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(openapi_components(DecideRequest, ChatRequestShape))
        api.openapi_schema = schema
    return api.openapi_schema


api.openapi = _openapi  # type: ignore[method-assign]


@api.exception_handler(HTTPException)
async def _http_error(_request: Request, exc: HTTPException) -> Response:
    """Unknown paths and methods answer in the same OpenAI shape as everything else."""
    return openai_error(exc.status_code, str(exc.detail), code="not_found", headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = format_loc(first["loc"][1:]) or None
    return openai_error(422, f"{param or 'request'}: {first['msg']}", param=param)


# --- module helpers -----------------------------------------------------------------------


def _build_classifier(args: AppArgs, sim_url: str | None) -> Classifier:
    from autoray.classify import build_classifier

    return build_classifier(
        args.classifier,
        llm_model=args.llm_classifier_model,
        sim_url=sim_url,
        timeout_s=args.classifier_timeout_s,
    )


def _event_waiter() -> Callable[[int, float], Awaitable[int]]:
    """Long-poll on the table events actor (created by the first replica that starts)."""
    handle: Any = events_actor(create=True)

    async def wait(after: int, timeout_s: float) -> int:
        return int(await handle.wait.remote(after, timeout_s))

    return wait


def _decide_input(body: DecideRequest) -> DecisionInput:
    return DecisionInput(
        messages=body.message_dicts(),
        session_id=body.session_id,
        denied=parse_denied(body.denied_models),
        mode=body.mode,
        constraints=body.constraints.as_constraints(),
        text_field="prompt" if body.prompt is not None else "messages",
    )


def _chat_input(request: Request, data: dict[str, Any], shape: ChatRequestShape) -> DecisionInput:
    """The decision fields of a chat: autoray's own body fields, the session from the body's
    ``session_id``, else the ``x-autoray-session`` header, else OpenAI's ``user`` field."""
    fields = validate_body(
        DecisionOptions, {name: data[name] for name in DecisionOptions.model_fields if name in data}
    )
    header = request.headers.get(SESSION_HEADER) or None
    if header is not None:
        _check_session_id(header, SESSION_HEADER)
    session = fields.session_id or header or _session_from_user(shape.user)
    return DecisionInput(
        messages=[message.model_dump(exclude_none=True) for message in shape.messages],
        session_id=session,
        denied=parse_denied(fields.denied_models),
        mode=fields.mode,
        constraints=fields.constraints.as_constraints(),
    )


def _session_from_user(user: str | None) -> str | None:
    if user is None or not 0 < len(user) <= MAX_SESSION_ID_CHARS:
        return None
    return user


def _check_session_id(session_id: str, where: str) -> None:
    if not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
        raise BodyError(
            openai_error(
                422,
                f"session_id ({where}) must be 1 to {MAX_SESSION_ID_CHARS} characters, got "
                f"{len(session_id)}; use a shorter id",
                param="session_id",
                code="invalid_value",
            )
        )


def _no_session(session_id: str, ttl_s: float) -> Response:
    return openai_error(
        404,
        f"no session {session_id[:60]!r}: never seen, deleted, or idle for over {ttl_s:g} s",
        param="session_id",
        code="session_not_found",
        type_="not_found_error",
    )


def _unauthorized(env_var: str) -> Response:
    return openai_error(
        401,
        "missing or unknown client key; send 'Authorization: Bearer <key>' with one of the keys "
        f"configured in ${env_var}",
        code="invalid_api_key",
        type_="authentication_error",
        headers={"www-authenticate": "Bearer"},
    )


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "autoray"}


def _table_labels(loaded: LoadedTable) -> list[str]:
    keys: dict[ModelKey, None] = {}
    for candidates in loaded.table.routes.values():
        for candidate in candidates:
            keys.setdefault(candidate.key, None)
    return [model_label(key) for key in keys]


class _SimulatedFarm:
    """The SIMULATED farm a replica starts for simulated models when no farm URL is configured.

    Restarted only when the set of simulated entries changes (a new table with other models).
    """

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self._signature: tuple[str, ...] = ()
        self._url: str | None = None

    async def url_for(self, entries: Sequence[ModelEntry]) -> str | None:
        simulated = [entry for entry in entries if entry.provider == "simulated"]
        signature = tuple(sorted(entry.model_dump_json() for entry in simulated))
        if signature == self._signature:
            return self._url
        await self.close()
        if simulated:
            stack = contextlib.ExitStack()
            self._url = await asyncio.to_thread(stack.enter_context, simulated_farm_for(simulated))
            self._stack = stack
        self._signature = signature
        return self._url

    async def close(self) -> None:
        stack, self._stack, self._url, self._signature = self._stack, None, None, ()
        if stack is not None:
            await asyncio.to_thread(stack.close)


# Serve pickles the ingress class (and the FastAPI app) when the decorators run, so everything
# they refer to (helpers, error handlers, the OpenAPI override) is defined above them.


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)
@serve.ingress(api)
class AutorayIngress:
    """One replica: its table watcher, classifier, caches and HTTP client."""

    async def __init__(self, args: AppArgs) -> None:  # type: ignore[misc]
        """Load the active table before taking traffic (Serve waits for an async init)."""
        settings = Settings.from_env()
        context = serve.get_replica_context()
        self._args = args
        self._replica = context.replica_id.unique_id
        self._keys = ClientKeys.from_env(args.api_keys_env)
        self._metrics = ServeMetrics()
        self._sim_url = args.sim_url or settings.sim_url
        self._farm = _SimulatedFarm()
        self._sessions = SessionClient.connect(
            context.app_name, max_sessions=args.max_sessions, ttl_s=args.session_ttl_s
        )
        self._decisions = self._decision_service()
        self._chat = ChatDeps(
            http=httpx.AsyncClient(limits=_HTTP_LIMITS, timeout=None),  # per upstream, per call
            upstreams=UpstreamResolver(args.models, sim_url=self._sim_url),
            fallback_model=args.fallback_model,
            on_usage=lambda _usage: None,  # replaced per request, to count the client's key
        )
        self._watcher = TableWatcher(
            resolve_database_url(args.database_url, settings),
            interval_s=args.table_check_interval_s,
            on_load=self._adopt_table,
            wait_for_event=_event_waiter(),
            on_outcome=self._metrics.record_reload,
        )
        await self._watcher.start()
        table = self._watcher.table
        logger.info(
            "autoray replica %s of %r ready: table %s, client keys %s",
            self._replica,
            context.app_name,
            table.version if table else "none",
            "required" if self._keys.required else "not required",
        )

    def _decision_service(self) -> DecisionService:
        args = self._args
        return DecisionService(
            classifier=_build_classifier(args, self._sim_url),
            cache=TTLCache(args.classification_cache_size, args.classification_cache_ttl_s),
            sessions=self._sessions,
            table=lambda: self._watcher.table,
            recorder=self._metrics,
            label=model_label,
            blocking_classifier=args.classifier == "llm",
        )

    async def __del__(self) -> None:
        """Serve calls this on a graceful shutdown: stop the watcher, the client, the farm."""
        await self._watcher.close()
        await self._chat.http.aclose()
        await self._farm.close()

    # ------------------------------------------------------------------ routes
    @api.post(
        "/v1/decide",
        response_model=None,
        responses={200: {"model": DecideResponse}, **ERROR_RESPONSES},
        openapi_extra=openapi_request_body(DecideRequest),
    )
    async def decide(self, request: Request) -> Response:
        """Classify the request and decide which model should answer it."""
        return await self._v1(request, "decide", self._decide)

    @api.post(
        "/v1/chat/completions",
        response_model=None,
        responses=ERROR_RESPONSES,
        openapi_extra=openapi_request_body(ChatRequestShape),
    )
    async def chat_completions(self, request: Request) -> Response:
        """OpenAI chat completions; model ``autoray/auto`` decides, any other passes through."""
        return await self._v1(request, "chat", self._chat_completions)

    @api.get("/v1/models", response_model=None)
    async def models(self, request: Request) -> Response:
        """``autoray/auto`` and every model of the active table, in OpenAI's list shape."""
        return await self._v1(request, "models", self._models)

    @api.get("/v1/routing-table", response_model=None, responses=ERROR_RESPONSES)
    async def routing_table(self, request: Request) -> Response:
        """The active routing table (its JSON form), or 404 when none is active."""
        return await self._v1(request, "routing_table", self._routing_table)

    @api.get(
        "/v1/sessions/{session_id}",
        response_model=None,
        responses={200: {"model": SessionBody}, **ERROR_RESPONSES},
    )
    async def get_session(self, request: Request, session_id: str) -> Response:
        """A session's sticky model, or 404 when it is unknown or expired."""
        return await self._v1(request, "sessions", partial(self._get_session, session_id))

    @api.delete("/v1/sessions/{session_id}", response_model=None, responses=ERROR_RESPONSES)
    async def delete_session(self, request: Request, session_id: str) -> Response:
        """Forget a session's model (204), or 404 when there was none."""
        return await self._v1(request, "sessions", partial(self._delete_session, session_id))

    @api.get("/healthz")
    async def healthz(self) -> Response:
        """Liveness and the table this replica serves (no key needed)."""
        health = {"status": "ok", "replica": self._replica, **self._watcher.health()}
        return json_response(health)

    # ------------------------------------------------------------------ handlers
    async def _v1(
        self, request: Request, endpoint: str, work: Callable[[Request, str], Awaitable[Response]]
    ) -> Response:
        """Authenticate, count, run ``work``; a bad body becomes its 4xx (never a 500)."""
        key_id = self._keys.identify(request.headers.get("authorization"))
        if key_id is None:
            return _unauthorized(self._args.api_keys_env)
        self._metrics.record_request(key_id=key_id, endpoint=endpoint)
        try:
            return await work(request, key_id)
        except BodyError as err:
            return err.response
        except NoUserTextError as err:
            return openai_error(400, str(err), param=err.field, code="no_user_text")

    async def _decide(self, request: Request, _key_id: str) -> Response:
        body = validate_body(DecideRequest, await self._json(request))
        result = await self._decisions.decide(_decide_input(body), endpoint="decide")
        return json_response(result.as_dict())

    async def _chat_completions(self, request: Request, key_id: str) -> Response:
        data = await self._json(request)
        shape = validate_body(ChatRequestShape, data)
        deps = replace(self._chat, on_usage=partial(self._count_usage, key_id))
        if shape.model != AUTO_MODEL:
            return await handle_chat(data, outcome=None, route=None, table_version=None, deps=deps)
        result = await self._decisions.decide(_chat_input(request, data, shape), endpoint="chat")
        response = await handle_chat(
            data,
            outcome=result.outcome,
            route=result.route,
            table_version=result.table_version,
            deps=deps,
        )
        self._count_fallbacks(response, result)
        return response

    async def _models(self, _request: Request, _key_id: str) -> Response:
        names = [AUTO_MODEL, *self._served_models()]
        cards = [_model_card(name) for name in names]
        return json_response({"object": "list", "data": cards})

    async def _routing_table(self, _request: Request, _key_id: str) -> Response:
        table = self._watcher.table
        if table is None:
            return openai_error(
                404,
                "no routing table is active; run `autoray bench run CONFIG` to publish one, or "
                "`autoray table activate VERSION` to activate a stored one",
                code="no_table",
                type_="not_found_error",
            )
        return json_response(table.as_dict())

    async def _get_session(self, session_id: str, _request: Request, _key_id: str) -> Response:
        _check_session_id(session_id, "path")
        found = await self._sessions.peek(session_id)
        if found is None:
            return _no_session(session_id, self._args.session_ttl_s)
        return json_response(found.as_dict(session_id, self._args.session_ttl_s))

    async def _delete_session(self, session_id: str, _request: Request, _key_id: str) -> Response:
        _check_session_id(session_id, "path")
        if not await self._sessions.delete(session_id):
            return _no_session(session_id, self._args.session_ttl_s)
        return Response(status_code=204)

    # ------------------------------------------------------------------ helpers
    async def _json(self, request: Request) -> dict[str, Any]:
        return await parse_json_body(request, self._args.max_body_bytes)

    async def _adopt_table(self, loaded: LoadedTable) -> None:
        """Build the new table's upstreams (and farm) before the watcher makes it visible."""
        entries = merge_entries(loaded.entries, self._args.models)
        sim_url = self._sim_url or await self._farm.url_for(entries)
        self._chat.upstreams = UpstreamResolver(entries, sim_url=sim_url)
        self._metrics.known_models = frozenset(
            [*_table_labels(loaded), *self._chat.upstreams.names(), self._args.fallback_model or ""]
        )

    def _served_models(self) -> list[str]:
        table = self._watcher.current
        labels = _table_labels(table) if table else []
        return list(dict.fromkeys([*labels, *self._chat.upstreams.names()]))

    def _count_usage(self, key_id: str, usage: Usage) -> None:
        self._metrics.record_usage(
            key_id=key_id,
            model=usage.model,
            route=usage.route,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.cost_usd,
        )

    def _count_fallbacks(self, response: Response, result: DecisionResult) -> None:
        if response.headers.get(FALLBACK_HEADER):
            self._metrics.record_fallback("fallback_model")
        failed = response.headers.get(FALLBACKS_HEADER, "0")
        if response.status_code < 400 and failed.isdigit() and int(failed) > 0:
            self._metrics.record_fallback("failover")


# --- the application builder --------------------------------------------------------------


def build_app(args: AppArgs | dict[str, Any]) -> serve.Application:
    """The Serve application for ``args`` (a dict is validated into :class:`AppArgs`).

    ``serve run serve.app:build_app database_url=...`` and ``serve/config.yaml`` call this with
    the arguments as a dict; ``autoray serve`` with an ``AppArgs``.
    """
    app_args = args if isinstance(args, AppArgs) else AppArgs.model_validate(args)
    deployment: Any = AutorayIngress  # the decorators made it a Deployment
    return deployment.options(
        num_replicas=app_args.num_replicas,
        max_ongoing_requests=app_args.max_ongoing_requests,
    ).bind(app_args)
