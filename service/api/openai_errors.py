"""Errors on the OpenAI-compatible routes (`/v1/...`) in OpenAI's shape,
`{"error": {"message", "type", "code", "param"}}`, because the openai SDKs and the chat UIs built on
them read that shape (and the status) to raise AuthenticationError, RateLimitError and so on.
The status codes and Retry-After are the same as on /ask; an invalid request is 400, as OpenAI's."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from service.api.openai_models import OpenAIError, OpenAIErrorBody

PREFIX = "/v1/"

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}


def is_openai_route(request: Request) -> bool:
    return request.url.path.startswith(PREFIX)


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error_body(status: int, code: str, message: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(error=OpenAIErrorBody(message=message, type=error_type(status), code=code, param=param))


def openai_error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, param: str | None = None
) -> JSONResponse:
    status = 400 if status == 422 else status  # OpenAI's invalid request; the SDK's BadRequestError
    body = openai_error_body(status, code, message, param)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)
