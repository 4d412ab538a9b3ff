"""One place that turns every failure into a real status code and a typed `ErrorResponse` body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.observability import request_id_var
from service.api.openai_errors import is_openai_route, openai_error_response
from service.errors import CiteqaError
from service.schemas import ErrorBody, ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(
    code: str, message: str, details: list[ErrorDetail] | None = None, request_id: str | None = None
) -> ErrorResponse:
    return ErrorResponse(
        error=ErrorBody(
            code=code, message=message, details=details or [], request_id=request_id or request_id_var.get()
        )
    )


def error_response(exc: CiteqaError, request_id: str | None = None, openai: bool = False) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.status_code == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    if openai:  # /v1/...: the shape the openai SDKs read (service/api/openai_errors.py)
        return openai_error_response(exc.status_code, exc.code, exc.message, headers)
    body = error_body(exc.code, exc.message, request_id=request_id)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(CiteqaError)
    async def _citeqa(request: Request, exc: CiteqaError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error_response(exc, openai=is_openai_route(request))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            ErrorDetail(
                loc=[str(x) if not isinstance(x, int) else x for x in e.get("loc", ())],
                msg=str(e.get("msg", "")),
                type=str(e.get("type", "")),
            )
            for e in exc.errors()
        ]
        message = "; ".join(f"{'.'.join(map(str, d.loc[1:] or d.loc))}: {d.msg}" for d in details)[:500]
        if is_openai_route(request):
            param = ".".join(map(str, details[0].loc[1:])) if details else None
            return openai_error_response(400, "invalid_request", message or "invalid request", param=param or None)
        return JSONResponse(
            error_body("invalid_request", message or "invalid request", details).model_dump(), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if is_openai_route(request):
            return openai_error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))
        return JSONResponse(
            error_body(code, str(exc.detail)).model_dump(),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        if is_openai_route(request):
            return openai_error_response(500, "internal_error", "internal error; see the server log")
        return JSONResponse(
            error_body("internal_error", "internal error; see the server log").model_dump(), status_code=500
        )
