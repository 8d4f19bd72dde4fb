"""One error shape for every ``/v1/*`` route: OpenAI's.

OpenAI clients (the official SDKs, LangChain, editors) parse ``{"error": {...}}`` and show its
``message``; answering in that shape everywhere, validation errors included, means a client sees
our message ("messages[0].role: ... use one of ...") instead of a generic parse failure.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


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
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error response in OpenAI's shape: ``{"error": {message, type, param, code}}``.

    ``param`` names the offending field (a dotted path such as ``messages.0.role``) so a client
    can point at it; ``message`` says what was wrong and how to fix it.
    """
    body = error_body(message, param=param, code=code, type_=type_)
    return JSONResponse(body, status_code=status, headers=headers)
