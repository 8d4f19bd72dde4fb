"""One error shape for every ``/v1/*`` route: OpenAI's.

OpenAI clients (the official SDKs, LangChain, editors) parse ``{"error": {...}}`` and show its
``message``; answering in that shape everywhere, validation errors included, means a client sees
our message ("messages[0].role: ... use one of ...") instead of a generic parse failure.

Bodies are rendered as ASCII JSON: a message may quote what the client sent, and a lone
surrogate (valid in JSON text, ``"\\ud800"``) cannot be encoded as UTF-8, so quoting it in a
UTF-8 body would turn a 4xx into a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: any Python string renders."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return text.encode("ascii")


def json_response(
    content: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return AsciiJSONResponse(content, status_code=status, headers=dict(headers or {}))


def error_body(
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type_: str = "invalid_request_error",
) -> dict[str, Any]:
    """The JSON body of an OpenAI-shaped error (for callers that build their own response)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    type_: str = "invalid_request_error",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error response in OpenAI's shape: ``{"error": {message, type, param, code}}``.

    ``param`` names the offending field (a path such as ``messages[0].role``) so a client can
    point at it; ``message`` says what was wrong and how to fix it.
    """
    body = error_body(message, param=param, code=code, type_=type_)
    return json_response(body, status, headers=headers)
