"""The SIMULATED model farm: an OpenAI-compatible HTTP server whose models are not real.

It is the embedded stand-in for model endpoints, so a benchmark runs end to end with no
account, key or network: each configured simulated model answers golden cases from their
reference (or wrong answer) with its configured per-route skill, price and latency,
deterministically (see :mod:`autoray.simulation`). Every response carries
``system_fingerprint: "autoray-simulated-farm"`` so nothing it produces can pass for a real
model's output.

Test hooks (``test_hooks=True`` only; never enabled by ``autoray sim serve``):
``POST /_faults`` queues faults for a model (or all models), consumed one per chat request, so
provider tests can exercise retries over real HTTP; ``DELETE /_faults`` clears them.

TEST FAULT switches (every farm, callers on loopback only): ``POST /admin/faults`` with
``{"status": 503, "for_s": 12}`` makes every ``/v1`` request answer that status for 12 s (a
provider outage); ``{"refuse": true, "for_s": 5}`` closes the listening socket and every idle
connection for 5 s, so new connections are refused as by a server that is down, then listens
again on the same port. ``GET`` shows the switch, ``DELETE`` turns an outage off. A request from
any address but loopback gets 403: the switches are for the engine's fault tests and the chaos
soak (``benchmarks/chaos.py``) on the farm's own machine, never for a peer on the network.

Streaming: a request with ``stream: true`` gets the same answer as ``text/event-stream`` in
OpenAI's chunk format (:func:`completion_chunks`). Faults apply before the stream starts, as a
real provider's errors do, so a router can fail over before it has sent a byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from starlette.background import BackgroundTask

from autoray import simulation
from autoray.errors import ConfigError, InfrastructureError
from autoray.providers.base import wire_model_name
from autoray.taxonomy import ROUTES

if TYPE_CHECKING:
    from autoray.cases import Dataset, GoldenCase
    from autoray.config import BenchConfig, ModelEntry
    from autoray.settings import Settings

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_FAULT_S = 600.0
"""The longest a test fault switch stays on: a forgotten switch must not outlive a test run."""
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0
_GRACEFUL_STOP_S = 2
"""How long requests in flight may finish when the farm stops listening (``refuse``)."""
_ANY_MODEL = "*"
_CHUNK_CHARS = 4
"""Characters per streamed piece: one simulated token (see ``simulation.count_tokens``)."""
_STREAM_FIELDS = frozenset({"stream", "stream_options"})


class StreamOptions(BaseModel):
    """Strict booleans, as OpenAI's API has them: ``"yes"`` is a 400, not a stream."""

    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    """The part of an OpenAI chat-completions request the farm reads.

    Unknown fields are ignored, not rejected: OpenAI clients send many optional parameters
    (temperature, max_tokens, ...) that a simulated model has no use for.
    """

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class Fault(BaseModel):
    """One test-only misbehaviour, repeated for ``count`` requests."""

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    malformed: bool = False
    bad_tool_arguments: bool = False
    delay_ms: int = Field(default=0, ge=0)
    count: int = Field(default=1, ge=1)


class FaultRequest(BaseModel):
    """``model`` is a wire name (``id`` or ``id@variant``); omitted means every model."""

    model_config = ConfigDict(extra="forbid")

    model: str = _ANY_MODEL
    faults: list[Fault] = Field(min_length=1)


class FaultSwitch(BaseModel):
    """A TEST FAULT switch, on for ``for_s`` seconds: answer every ``/v1`` request with
    ``status`` (an outage), or ``refuse`` connections (a server that is down)."""

    model_config = ConfigDict(extra="forbid")

    status: int | None = Field(default=None, ge=400, le=599)
    refuse: StrictBool = False
    for_s: float = Field(gt=0, le=MAX_FAULT_S)

    @model_validator(mode="after")
    def _one_kind(self) -> FaultSwitch:
        if (self.status is None) == (not self.refuse):
            raise ValueError(
                "give exactly one of status (e.g. 503) and refuse: true, "
                f"got status={self.status!r}, refuse={self.refuse!r}"
            )
        return self


class _Outage:
    """The status every ``/v1`` request gets until a moment (monotonic clock), or none."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.until = 0.0

    def switch_on(self, status: int, for_s: float) -> None:
        self.status, self.until = status, time.monotonic() + for_s

    def switch_off(self) -> None:
        self.status, self.until = None, 0.0

    def remaining_s(self) -> float:
        return max(0.0, self.until - time.monotonic()) if self.status is not None else 0.0

    def current(self) -> int | None:
        return self.status if self.remaining_s() > 0 else None


RefuseHook = Callable[[float], None]
"""Stops the farm listening for that many seconds; given by the server that runs the app."""


class _Farm:
    """What the app serves: models by wire name, cases by prompt, queued test faults and the
    test fault switches."""

    def __init__(self, models: Sequence[ModelEntry], dataset: Dataset, seed: int) -> None:
        self.models = _models_by_wire_name(models)
        self.cases = {case.prompt.strip(): case for case in dataset.cases}
        self.seed = seed
        self.faults: dict[str, deque[Fault]] = {}
        self.outage = _Outage()
        self.refuse: RefuseHook | None = None

    def queue_faults(self, request: FaultRequest) -> None:
        queue = self.faults.setdefault(request.model, deque())
        for fault in request.faults:
            queue.extend(fault.model_copy(update={"count": 1}) for _ in range(fault.count))

    def next_fault(self, model: str) -> Fault | None:
        for key in (model, _ANY_MODEL):
            queue = self.faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def reply(self, entry: ModelEntry, request: ChatRequest, rep: int) -> simulation.SimTurn:
        prompt = _first_user_prompt(request.messages)
        case = self.cases.get(prompt.strip())
        if case is None:
            return simulation.SimTurn(simulation.generic_reply(prompt))
        return simulation.next_turn(
            case,
            passing=self._passes(entry, case, rep),
            messages=request.messages,
            tools_offered=bool(request.tools),
        )

    def _passes(self, entry: ModelEntry, case: GoldenCase, rep: int) -> bool:
        skill = simulation.skill_for(case.route, entry.skill or {})
        return simulation.passes(entry.id, entry.variant, case.id, rep, self.seed, skill)


def build_farm_app(
    models: Sequence[ModelEntry],
    dataset: Dataset,
    *,
    seed: int,
    test_hooks: bool = False,
    refuse: RefuseHook | None = None,
) -> FastAPI:
    """The farm as a FastAPI app; non-simulated entries are ignored, skills checked up front.

    ``refuse`` is how the server running the app stops listening for a while; without it the
    ``refuse`` test fault answers 501 (an app under a test client has no socket to close).
    """
    farm = _Farm(models, dataset, seed)
    farm.refuse = refuse
    app = FastAPI(title="autoray SIMULATED model farm (not real models)", docs_url=None)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "simulated": True,
            "models": len(farm.models),
            "cases": len(farm.cases),
        }

    @app.get("/v1/models")
    async def list_models() -> Response:
        outage = farm.outage.current()
        if outage is not None:
            return _outage_response(outage)
        return JSONResponse({"object": "list", "data": [_model_card(name) for name in farm.models]})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatRequest) -> Response:
        return await _complete(farm, request, test_hooks)

    if test_hooks:
        _add_fault_routes(app, farm)
    _add_fault_switches(app, farm)
    return app


def _add_fault_switches(app: FastAPI, farm: _Farm) -> None:
    """The TEST FAULT switches under ``/admin/faults``, for loopback callers only."""

    @app.post("/admin/faults", status_code=202)
    async def switch_on(switch: FaultSwitch, request: Request) -> Response:
        refused = _refuse_non_loopback(request)
        if refused is not None:
            return refused
        if switch.refuse:
            return _switch_refuse(farm, switch.for_s)
        assert switch.status is not None  # FaultSwitch holds exactly one kind
        farm.outage.switch_on(switch.status, switch.for_s)
        logger.warning(
            "SIMULATED farm, test fault: every /v1 request answers HTTP %d for %g s",
            switch.status,
            switch.for_s,
        )
        return JSONResponse(_switch_state(farm), status_code=202)

    @app.get("/admin/faults")
    async def show(request: Request) -> Response:
        return _refuse_non_loopback(request) or JSONResponse(_switch_state(farm))

    @app.delete("/admin/faults")
    async def switch_off(request: Request) -> Response:
        refused = _refuse_non_loopback(request)
        if refused is not None:
            return refused
        farm.outage.switch_off()
        return JSONResponse(_switch_state(farm))


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ``::1`` and IPv4-mapped loopback; False for names and None."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _refuse_non_loopback(request: Request) -> Response | None:
    host = request.client.host if request.client is not None else None
    if is_loopback(host):
        return None
    return _error(
        403,
        f"the simulated farm's test fault switches answer loopback callers only, not {host!r}; "
        "call them on the farm's own machine at http://127.0.0.1:PORT/admin/faults",
        code="test_faults_loopback_only",
    )


def _switch_refuse(farm: _Farm, for_s: float) -> Response:
    if farm.refuse is None:
        return _error(
            501,
            "refuse needs the farm's own server (serve_farm or autoray sim serve): this app "
            "runs without a socket it can close; use status instead",
            param="refuse",
        )
    logger.warning("SIMULATED farm, test fault: connections refused for %g s", for_s)
    body = {"test_fault": True, "refuse": True, "for_s": for_s}
    # After the answer is sent, so the caller learns the switch is on before the port closes.
    return JSONResponse(body, status_code=202, background=BackgroundTask(farm.refuse, for_s))


def _switch_state(farm: _Farm) -> dict[str, Any]:
    return {
        "test_fault": True,
        "status": farm.outage.current(),
        "remaining_s": round(farm.outage.remaining_s(), 3),
    }


def _outage_response(status: int) -> Response:
    return _error(
        status,
        f"simulated outage: HTTP {status} (test fault switch of the simulated farm)",
        code="sim_outage",
    )


def _add_fault_routes(app: FastAPI, farm: _Farm) -> None:
    @app.post("/_faults")
    async def queue_faults(request: FaultRequest) -> dict[str, Any]:
        farm.queue_faults(request)
        return {"queued": {key: len(queue) for key, queue in farm.faults.items()}}

    @app.delete("/_faults")
    async def clear_faults() -> dict[str, Any]:
        farm.faults.clear()
        return {"queued": {}}


async def _complete(farm: _Farm, request: ChatRequest, test_hooks: bool) -> Response:
    outage = farm.outage.current()
    if outage is not None:  # an outage answers before anything else is looked at
        return _outage_response(outage)
    entry = farm.models.get(request.model)
    if entry is None:
        return _error(
            404,
            f"The model {request.model!r} does not exist on the simulated farm; "
            f"served models: {', '.join(farm.models) or '(none)'}",
            param="model",
            code="model_not_found",
        )
    rep_text = (request.metadata or {}).get("rep", "0")
    if not rep_text.isdigit():
        return _error(
            400,
            f"metadata.rep must be a non-negative integer, got {rep_text!r}",
            param="metadata.rep",
        )
    fault = farm.next_fault(request.model) if test_hooks else None
    if fault is not None and fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    if fault is not None and (fault.status or fault.malformed):
        return _fault_response(fault)
    if entry.latency_ms:
        await asyncio.sleep(entry.latency_ms / 1000)
    turn = farm.reply(entry, request, int(rep_text))
    body = _completion_body(request, turn)
    if fault is not None and fault.bad_tool_arguments:
        _break_tool_arguments(body)
    if request.stream:
        return _stream(completion_chunks(body, include_usage=request.include_usage))
    return JSONResponse(body)


def _completion_body(request: ChatRequest, turn: simulation.SimTurn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.is_tool_call:
        arguments = json.dumps(turn.tool_arguments, sort_keys=True)
        message["tool_calls"] = [
            {
                "id": turn.tool_call_id,
                "type": "function",
                "function": {"name": turn.tool_name, "arguments": arguments},
            }
        ]
    prompt_tokens = simulation.conversation_tokens(request.messages)
    completion_tokens = simulation.count_tokens(
        turn.content or json.dumps(message.get("tool_calls"), sort_keys=True)
    )
    return {
        "id": "chatcmpl-sim-" + _digest(request.model_dump_json(exclude=set(_STREAM_FIELDS))),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": simulation.SIMULATED_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn.is_tool_call else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def completion_chunks(body: dict[str, Any], *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """A completion body as OpenAI streams it: role, content pieces, tool calls in pieces, the
    finish reason, then (when asked for) a usage chunk with no choices.

    Every chunk keeps the completion's id and the simulated fingerprint, so a streamed answer is
    labelled exactly like the non-streamed one and reassembles to the same message.
    """
    choice = body["choices"][0]
    message = choice["message"]
    yield _chunk(body, {"role": "assistant"}, include_usage)
    for piece in _pieces(message.get("content") or ""):
        yield _chunk(body, {"content": piece}, include_usage)
    for index, call in enumerate(message.get("tool_calls") or ()):
        for delta in _tool_call_deltas(index, call):
            yield _chunk(body, {"tool_calls": [delta]}, include_usage)
    yield _chunk(body, {}, include_usage, finish_reason=choice["finish_reason"])
    if include_usage:
        yield {**_chunk_header(body), "choices": [], "usage": body["usage"]}


def _tool_call_deltas(index: int, call: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The call's id and name first with empty arguments, then the arguments in pieces."""
    function = call["function"]
    yield {
        "index": index,
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": ""},
    }
    for piece in _pieces(function["arguments"]):
        yield {"index": index, "function": {"arguments": piece}}


def _chunk(
    body: dict[str, Any],
    delta: dict[str, Any],
    include_usage: bool,
    *,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    chunk = {**_chunk_header(body), "choices": [choice]}
    if include_usage:
        chunk["usage"] = None
    return chunk


def _chunk_header(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": body["id"],
        "object": "chat.completion.chunk",
        "created": body["created"],
        "model": body["model"],
        "system_fingerprint": body["system_fingerprint"],
    }


def _pieces(text: str) -> Iterator[str]:
    for start in range(0, len(text), _CHUNK_CHARS):
        yield text[start : start + _CHUNK_CHARS]


def _stream(chunks: Iterator[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0)  # let each event go out on its own, as a real stream does
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _break_tool_arguments(body: dict[str, Any]) -> None:
    message = body["choices"][0]["message"]
    message["tool_calls"] = message.get("tool_calls") or [
        {"id": "call_bad", "type": "function", "function": {"name": "bash", "arguments": ""}}
    ]
    for call in message["tool_calls"]:
        call["function"]["arguments"] = "{not json"


def _fault_response(fault: Fault) -> Response:
    if fault.malformed:
        return Response("{this is not json", media_type="application/json")
    status = fault.status or 500
    response = _error(status, f"simulated fault: HTTP {status} (test hook)", code="sim_fault")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = f"{fault.retry_after:g}"
    return response


def _error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """An error in the OpenAI format, so OpenAI clients surface the message."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'body'}: {err.get('msg')}"
        for err in errors
    )
    return _error(400, f"invalid request: {detail or exc}")


def _model_card(name: str) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": simulation.SIMULATED_FINGERPRINT,
    }


def _models_by_wire_name(models: Sequence[ModelEntry]) -> dict[str, ModelEntry]:
    served: dict[str, ModelEntry] = {}
    for entry in models:
        if entry.provider != "simulated":
            continue
        name = wire_model_name(entry)
        if name in served:
            raise ConfigError(f"simulated model {name!r} is listed twice; give each a variant")
        for route in ROUTES:
            simulation.skill_for(route, entry.skill or {})
        served[name] = entry
    return served


def _first_user_prompt(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def farm_host(alive_nodes: int, node_ip: str) -> str:
    """The address the farm listens on: loopback on a one-node cluster, else the node's IP.

    Lanes run on every node of a cluster; a farm on 127.0.0.1 is out of reach for lanes on the
    other nodes, which wrote connection-refused rows before this choice (issue 9, finding 1).
    """
    return node_ip if alive_nodes > 1 else LOOPBACK


@contextmanager
def serve_farm(
    models: Sequence[ModelEntry],
    dataset: Dataset,
    *,
    seed: int,
    host: str = LOOPBACK,
    port: int = 0,
    test_hooks: bool = False,
) -> Iterator[str]:
    """Run the farm with uvicorn in a background thread; yields ``http://HOST:PORT/v1``.

    Binding the socket here (port 0 = a free port) tells the caller the port before the server
    starts, with no race for it.
    """
    server = _FarmServer(
        lambda refuse: build_farm_app(
            models, dataset, seed=seed, test_hooks=test_hooks, refuse=refuse
        ),
        host,
        port,
        log_level="warning",
    )
    thread = threading.Thread(target=server.serve, name="autoray-sim-farm", daemon=True)
    thread.start()
    try:
        _wait_healthy(server.url, server, thread)
        yield server.url + "/v1"
    finally:
        server.stop()
        thread.join(_STOP_TIMEOUT_S)


class _FarmServer:
    """uvicorn serving the farm app, able to stop listening for a while: the ``refuse`` test
    fault. Each listening period is a fresh uvicorn server on a fresh socket bound to the same
    port, so refused connections are real ``ECONNREFUSED``, as from a server that is down."""

    def __init__(
        self, make_app: Callable[[RefuseHook], FastAPI], host: str, port: int, *, log_level: str
    ) -> None:
        self._app = make_app(self.refuse_for)  # first: a bad model list fails before the bind
        self._host = host
        self._log_level = log_level
        self._sock = _bind(host, port)
        self.port = int(self._sock.getsockname()[1])
        self._uvicorn: uvicorn.Server | None = None
        self._resume_at = 0.0
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def serve(self) -> None:
        """Serve until :meth:`stop`, pausing whenever :meth:`refuse_for` asks to."""
        sock: socket.socket | None = self._sock
        while sock is not None:
            self._uvicorn = uvicorn.Server(self._config())
            try:
                self._uvicorn.run(sockets=[sock])
            finally:
                sock.close()
            sock = self._after_pause()

    def refuse_for(self, seconds: float) -> None:
        """Close the listener and idle connections now; listen again after ``seconds``."""
        self._resume_at = time.monotonic() + seconds
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def stop(self) -> None:
        self._stopped.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    @property
    def serving(self) -> bool:
        return self._uvicorn is not None and self._uvicorn.started

    def _after_pause(self) -> socket.socket | None:
        """A new socket on the same port once a refuse window is over; None when stopped."""
        wait_s = self._resume_at - time.monotonic()
        if self._stopped.is_set() or self._stopped.wait(max(0.0, wait_s)):
            return None
        if self._resume_at == 0.0:  # uvicorn stopped on its own (a signal), not for a pause
            return None
        self._resume_at = 0.0
        try:
            return _bind(self._host, self.port)
        except ConfigError as err:
            logger.error("SIMULATED farm cannot listen again after a refuse fault: %s", err)
            return None

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self._app,
            log_level=self._log_level,
            lifespan="off",
            proxy_headers=False,  # the loopback check reads the peer, never a forwarded header
            timeout_graceful_shutdown=_GRACEFUL_STOP_S,
        )


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot bind the simulated farm to {host}:{port} ({exc}); pick another --port"
        ) from None
    return sock


def _wait_healthy(url: str, server: _FarmServer, thread: threading.Thread) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.serving:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise InfrastructureError(
                f"the simulated farm did not start at {url} within {_START_TIMEOUT_S:g}s; "
                "see its log above"
            )
        time.sleep(0.02)
    httpx.get(url + "/healthz", timeout=_START_TIMEOUT_S).raise_for_status()


def farm_url_for(
    config: BenchConfig, settings: Settings, stack: ExitStack, *, dataset: Dataset | None = None
) -> str | None:
    """Where the config's simulated models are served: None when it has none, else
    ``AUTORAY_SIM_URL`` when set, else a farm started now and stopped when ``stack`` closes."""
    simulated = [entry for entry in config.models if entry.provider == "simulated"]
    if not simulated:
        return None
    if settings.sim_url:
        return settings.sim_url
    if dataset is None:
        from autoray.cases import load_dataset

        dataset = load_dataset(config.dataset)
    return stack.enter_context(serve_farm(simulated, dataset, seed=config.seed))


def run_farm(
    models: Sequence[ModelEntry], dataset: Dataset, *, seed: int, host: str, port: int
) -> None:
    """Serve the farm in the foreground until interrupted (``autoray sim serve``).

    The socket is bound first so that a port in use is a clear :class:`ConfigError` rather
    than a uvicorn log line and a bare exit.
    """
    server = _FarmServer(
        lambda refuse: build_farm_app(models, dataset, seed=seed, refuse=refuse),
        host,
        port,
        log_level="info",
    )
    server.serve()
