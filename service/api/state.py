"""What the app holds while it runs: one typed value on `app.state.citeqa`, set up by the lifespan.

The answerer arrives in the background (see `service.api.app`): until then `status` says
"loading", and "failed" with a `detail` if loading raised. A new index version replaces it with
one assignment (see `service.api.reload`); a request keeps the answerer it started with.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.answer.pipeline import Answerer
from service.api.observability import Metrics
from service.api.shared_rate_limit import Limiter
from service.feedback.store import FeedbackStore
from service.llm.queue import LLMGate
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    gate: LLMGate
    metrics: Metrics
    # In memory, or in Redis with CITEQA_REDIS_URL (service/api/shared_rate_limit.py).
    rate_limiter: Limiter | None = None  # None when CITEQA_RATE_LIMIT is empty
    token_limiter: Limiter | None = None  # for POST /widget/token; None when CITEQA_TOKEN_RATE_LIMIT is empty
    answerer: Answerer | None = None
    status: str = "loading"  # loading | ok | failed
    detail: str | None = None
    reload_error: str | None = None  # why the newest index version could not be loaded; old one serves
    feedback: FeedbackStore | None = None  # POST /feedback writes here (CITEQA_FEEDBACK_DB)
