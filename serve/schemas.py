"""Request and response bodies of the decision API, and how a bad body becomes a clear 4xx.

``/v1/decide`` bodies are validated strictly: an unknown field is refused (422, naming it), so a
typo such as ``denied_model`` does not silently decide without the denial. Chat messages accept
extra keys (``name``, ``tool_calls``, ``tool_call_id`` ...) because OpenAI clients send them.

Handlers read the raw body themselves (:func:`parse_json_body`) instead of letting FastAPI
parse it, so that every failure, down to bytes that are not UTF-8, answers in the one OpenAI
error shape with the field it concerns, and a bad key is refused (401) before a bad body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import Response

from autoray.decision import Constraints, Mode, parse_denied
from serve.errors import openai_error

MAX_SESSION_ID_CHARS = 200
MAX_DENIED_MODELS = 100
MAX_MODEL_NAME_CHARS = 300
_REPR_MAX = 60
_REF_TEMPLATE = "#/components/schemas/{model}"

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
M = TypeVar("M", bound=BaseModel)


class ContentPart(BaseModel):
    """One part of an OpenAI message content list; only ``text`` parts are read."""

    model_config = ConfigDict(extra="allow")

    type: StrictStr
    text: StrictStr | None = None


class ChatMessage(BaseModel):
    """An OpenAI chat message; keys other than ``role`` and ``content`` are kept, not read."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: StrictStr | list[ContentPart] | None = None

    @model_validator(mode="before")
    @classmethod
    def _content_shape(cls, data: Any) -> Any:
        """One clear message for bad content instead of one per member of the union."""
        content = data.get("content") if isinstance(data, Mapping) else None
        where = _bad_content(content)
        if where is None:
            return data
        raise PydanticCustomError(
            "content_type",
            "content must be a string, a list of parts such as "
            '[{"type": "text", "text": "..."}], or null; got {got}',
            {"got": _short(content), "suffix": where},
        )


def _bad_content(content: Any) -> str | None:
    """Where ``content`` breaks OpenAI's shape (``content`` or ``content[i]``), else None."""
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return "content"
    for index, part in enumerate(content):
        ok = (
            isinstance(part, Mapping)
            and isinstance(part.get("type"), str)
            and isinstance(part.get("text"), str | None)
        )
        if not ok:
            return f"content[{index}]"
    return None


class DecisionConstraints(BaseModel):
    """What the request needs of a model beyond its route."""

    model_config = ConfigDict(extra="forbid")

    min_context_tokens: StrictInt | None = Field(
        default=None,
        ge=1,
        description="The context the answer needs (prompt plus expected reply), in tokens.",
    )

    def as_constraints(self) -> Constraints:
        return Constraints(min_context_tokens=self.min_context_tokens)


class DecisionOptions(BaseModel):
    """How to decide: the session, denied models, mode and constraints (all optional).

    ``/v1/decide`` takes them at the top level of its body; ``autoray/auto`` chats take the
    same fields in the chat body (they are not sent upstream).
    """

    model_config = ConfigDict(extra="forbid")

    session_id: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SESSION_ID_CHARS,
        description="Keeps the session's model across requests (stickiness).",
    )
    denied_models: list[StrictStr] = Field(
        default_factory=list,
        max_length=MAX_DENIED_MODELS,
        description="Models this request refuses: 'id' (every variant) or 'id:variant'.",
    )
    mode: Mode = Field(default=Mode.COST_PER_ACCURACY, description="How to pick among candidates.")
    constraints: DecisionConstraints = Field(default_factory=DecisionConstraints)

    @field_validator("denied_models")
    @classmethod
    def _denials_parse(cls, value: list[str]) -> list[str]:
        for index, entry in enumerate(value):
            try:
                parse_denied([entry])
            except ValueError as err:
                raise PydanticCustomError(
                    "denied_model", "{why}", {"why": str(err), "at": f"denied_models[{index}]"}
                ) from None
        return value


class DecideRequest(DecisionOptions):
    """``POST /v1/decide``: the chat (``messages``) or one ``prompt``, never both."""

    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, description="The chat so far; the last user message decides."
    )
    prompt: StrictStr | None = Field(
        default=None, min_length=1, description="A single user prompt instead of messages."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DecideRequest:
        if (self.messages is None) == (self.prompt is None):
            given = "both" if self.messages is not None else "neither"
            raise PydanticCustomError(
                "one_of",
                "give exactly one of 'messages' (a chat) or 'prompt' (one text); got {given}",
                {"given": given, "at": "messages"},
            )
        return self

    def message_dicts(self) -> list[dict[str, Any]]:
        """The chat as plain mappings (a prompt becomes one user message)."""
        if self.messages is None:
            return [{"role": "user", "content": self.prompt}]
        return [message.model_dump(exclude_none=True) for message in self.messages]


class RouteScoreBody(BaseModel):
    route: str
    probability: float


class ClassificationBody(BaseModel):
    """How the request was classified; ``truncated``: only the first ``chars_read`` were read."""

    route: str
    task_type: str
    subtask_type: str
    confidence: float
    top: list[RouteScoreBody]
    classifier: str
    chars_read: int
    truncated: bool
    fallback: str | None
    cached: bool = Field(description="Served from this replica's classification cache.")


class DecisionBody(BaseModel):
    model: str
    variant: str | None
    route: str
    task_type: str
    subtask_type: str
    table_version: str
    sticky: bool
    switch_reason: Literal["cost", "threshold", "capability"] | None
    explanation: str
    accuracy: float
    avg_cost_usd: float


class CandidateBody(BaseModel):
    model_id: str
    variant: str | None
    accuracy: float
    avg_cost_usd: float
    cases: int
    meets_threshold: bool
    p50_latency_ms: float | None
    context_length: int | None
    cost_per_accuracy: float | None


class DecideResponse(BaseModel):
    """A decision, or null with ``reason`` (no_table, no_candidate, all_denied) and a message."""

    decision: DecisionBody | None
    classification: ClassificationBody
    reason: Literal["no_table", "no_candidate", "all_denied"] | None
    message: str | None
    alternatives: list[CandidateBody]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, used by every ``/v1`` route."""

    error: ErrorDetail


class SessionBody(BaseModel):
    session_id: str
    model: str
    variant: str | None
    route: str
    table_version: str
    updated_at: str
    expires_in_s: float


class ChatRequestShape(BaseModel):
    """What ``/v1/chat/completions`` checks itself; every other field passes through untouched."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(
        min_length=1,
        max_length=MAX_MODEL_NAME_CHARS,
        description="'autoray/auto' to let autoray decide, or a model name to pass through.",
    )
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False
    user: StrictStr | None = Field(
        default=None, description="Used as the session id when no x-autoray-session header."
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "Malformed body (not JSON, not UTF-8) or no user text"),
        (401, "Missing or unknown client key"),
        (413, "Body over the size limit"),
        (422, "A field is missing, unknown or of the wrong type (param names it)"),
    )
}


def openapi_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the handler reads itself."""
    schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
    schema.pop("$defs", None)
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


def openapi_components(*models: type[BaseModel]) -> dict[str, Any]:
    """The component schemas those bodies refer to."""
    found: dict[str, Any] = {}
    for model in models:
        found.update(model.model_json_schema(ref_template=_REF_TEMPLATE).get("$defs", {}))
    return found


# --- reading a body ---------------------------------------------------------------------


class BodyError(Exception):
    """A request body that cannot be used; carries the response that says why."""

    def __init__(self, response: Response) -> None:
        super().__init__("bad request body")
        self.response = response


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyError(_too_large(limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, or a :class:`BodyError` naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BodyError(
            openai_error(
                400,
                f"request body is not UTF-8 (byte {err.start} is invalid); send UTF-8 JSON",
                code="invalid_encoding",
            )
        ) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise BodyError(
            openai_error(
                400,
                f"request body is not valid JSON ({_short(err)}); fix the syntax",
                code="invalid_json",
            )
        ) from None
    if not isinstance(data, dict):
        raise BodyError(
            openai_error(
                400,
                f"request body must be a JSON object, got {type(data).__name__}; "
                'send {"messages": [...]} or {"prompt": "..."}',
                code="invalid_type",
            )
        )
    return data


async def parse_json_body(request: Request, limit: int) -> dict[str, Any]:
    return parse_json_object(await read_body(request, limit))


def validate_body(model: type[M], data: Mapping[str, Any]) -> M:
    """``model`` validated from ``data``; a :class:`BodyError` (422) names the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise BodyError(validation_error(model, err)) from None
    except RecursionError:
        raise BodyError(openai_error(422, "request body is nested too deeply")) from None


def validation_error(model: type[BaseModel], err: ValidationError) -> Response:
    """422 in OpenAI's shape: ``param`` is the first bad field, ``message`` lists them all."""
    problems = [_describe(model, error) for error in err.errors(include_url=False)]
    message = "; ".join(text for _, text in problems[:5])
    if len(problems) > 5:
        message += f"; and {len(problems) - 5} more"
    return openai_error(422, message, param=problems[0][0] or None, code="invalid_value")


def _describe(model: type[BaseModel], error: Mapping[str, Any]) -> tuple[str, str]:
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    path = format_loc(loc)
    if isinstance(ctx.get("at"), str):  # a model-level check names the field it concerns
        path = ctx["at"]
    elif isinstance(ctx.get("suffix"), str):  # a message-level check names the key inside it
        path = f"{path}.{ctx['suffix']}"
    where = path or "request body"
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = ", ".join(_fields_at(model, loc[:-1]))
        return path, f"{where}: unknown field; valid fields: {valid}"
    if kind == "missing":
        return path, f"{where}: required field is missing; add it"
    if kind in ("one_of", "denied_model", "content_type"):
        return path, f"{where}: {error['msg']}"
    return path, f"{where}: {error['msg']} (got {_short(error.get('input'))})"


def format_loc(loc: Sequence[Any]) -> str:
    """``("messages", 0, "role")`` → ``messages[0].role``: the path a user sees in a message."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        current = _model_in(fields[part].annotation)
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]`` (for listing its fields)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


def _too_large(limit: int) -> Response:
    return openai_error(
        413,
        f"request body is larger than {limit} bytes; send a shorter prompt (the classifier reads "
        "only the opening of a request anyway)",
        code="body_too_large",
    )
