"""POST /feedback: thumbs up or down on an answer, from the widget or any client.

Guarded exactly like /ask (API key or widget token, and the same rate limit), since a page that may
ask may also rate what it was told. The write runs in a worker thread, so a slow or locked database
never stalls the event loop, and a failing one is a 503 the client can retry.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from service.api.auth import ClientDep
from service.api.dependencies import StateDep
from service.errors import FeedbackUnavailable
from service.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse

router = APIRouter()


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    responses={code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 429, 503)},
)
async def feedback(body: FeedbackRequest, state: StateDep, _client: ClientDep) -> FeedbackResponse:
    """Store a rating of one /ask answer; thumbs-down become eval drafts (`citeqa feedback export`)."""
    if state.feedback is None:
        raise FeedbackUnavailable("feedback is not set up on this service")
    # Not cancelled with the request: once started, the transaction finishes (or rolls back) whole.
    feedback_id = await asyncio.to_thread(state.feedback.add, body)
    state.metrics.feedback.labels(body.rating).inc()
    return FeedbackResponse(id=feedback_id)
