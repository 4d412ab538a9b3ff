"""The errors citeqa reports to its HTTP clients. Each class says who sees it and maps to one status
code and a typed `ErrorResponse` body; nothing else leaves the service as an error."""

from __future__ import annotations


class CiteqaError(Exception):
    """Base class. `code` is the stable machine-readable name clients switch on."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(CiteqaError):
    """The client sent something we cannot answer (beyond what schema validation catches)."""

    status_code = 422
    code = "invalid_request"


class PayloadTooLarge(CiteqaError):
    """The client sent a body over `CITEQA_MAX_BODY_BYTES`."""

    status_code = 413
    code = "payload_too_large"


class Unauthorized(CiteqaError):
    """The client has no valid API key or widget token."""

    status_code = 401
    code = "unauthorized"


class RateLimited(CiteqaError):
    """The client asked more often than `CITEQA_RATE_LIMIT` allows; `retry_after` says when to retry."""

    status_code = 429
    code = "rate_limited"


class RateLimitUnavailable(CiteqaError):
    """The shared rate-limit store (`CITEQA_REDIS_URL`) cannot be reached: the request is refused,
    not let through unlimited; the operator should check Redis."""

    status_code = 503
    code = "rate_limit_unavailable"


class FeedbackUnavailable(CiteqaError):
    """The feedback database (`CITEQA_FEEDBACK_DB`) cannot be written or read; nothing was stored,
    so the client may send the same feedback again later."""

    status_code = 503
    code = "feedback_unavailable"


class NotReady(CiteqaError):
    """The service is still loading its index or model."""

    status_code = 503
    code = "not_ready"


class Overloaded(CiteqaError):
    """The LLM queue is full; the client should retry after `retry_after` seconds."""

    status_code = 503
    code = "overloaded"


class StoreUnavailable(CiteqaError):
    """The vector store behind the index (PostgreSQL, a Milvus server) failed or is out of
    connections; the operator should check it and `CITEQA_VECTOR_STORE`'s settings."""

    status_code = 503
    code = "store_unavailable"


class LLMUnavailable(CiteqaError):
    """The LLM could not be reached or failed; the operator should check `CITEQA_LLM_*`."""

    status_code = 503
    code = "llm_unavailable"


class LLMTimeout(CiteqaError):
    """The LLM did not answer within `CITEQA_LLM_TIMEOUT` seconds."""

    status_code = 504
    code = "llm_timeout"


class LLMBadResponse(CiteqaError):
    """The LLM answered with something that is not a usable completion."""

    status_code = 502
    code = "llm_bad_response"
