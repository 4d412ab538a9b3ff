"""The FastAPI app factory. Its lifespan checks the index, then loads the embedder, index, prompts
and LLM once, in the background, so /health answers at once and /ready turns 200 when loaded. Then
it watches `CURRENT` and swaps in new index versions while serving (service/api/reload.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.answer.loading import Loader, check_index, load_answerer
from service.api import error_responses
from service.api.body_limit import BodyLimitMiddleware
from service.api.feedback import router as feedback_router
from service.api.mcp_mount import mount_mcp
from service.api.observability import Metrics, RequestContextMiddleware
from service.api.openai_compat import router as openai_router
from service.api.reload import IndexWatcher, StoreWatcher
from service.api.routes import router
from service.api.shared_rate_limit import check_store, close_store, make_limiters
from service.api.state import AppState
from service.api.widget import router as widget_router
from service.feedback.store import FeedbackStore
from service.llm.client import warm_up
from service.llm.queue import LLMGate
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, loader: Loader | None = None, check: bool = True) -> FastAPI:
    """`loader` builds the Answerer (tests pass fakes); `check` validates the index up front so a
    missing or damaged index stops start-up with a message naming the fix."""
    settings = settings or get_settings()
    load = loader or load_answerer

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limiters = make_limiters(settings)  # here, in the loop: async Redis clients belong to one loop
        await check_store(limiters)
        state = AppState(
            settings=settings,
            gate=LLMGate(settings.llm_max_concurrency, settings.llm_queue_size),
            metrics=metrics,
            rate_limiter=limiters[0],
            token_limiter=limiters[1],
            feedback=FeedbackStore(settings.feedback_db),
        )
        app.state.citeqa = state
        if check and loader is None:
            check_index(settings)
        assert state.feedback is not None
        await asyncio.to_thread(state.feedback.check)  # creates the table; a failure is logged, not fatal

        async def load_in_background() -> None:
            try:
                answerer = await asyncio.to_thread(load, settings, state.gate)
                if not answerer.retriever.n_chunks:  # nothing could ever be answered: not ready, and why
                    state.status = "failed"
                    state.detail = (
                        f"the index holds no documents: add .txt or .md files to {settings.corpus_dir} "
                        "and run `citeqa index`"
                    )
                    log.error("%s", state.detail)
                    return
                await warm_up()
                state.answerer = answerer
                state.status, state.detail = "ok", None
                metrics.record_index(answerer.retriever.version, answerer.retriever.n_chunks)
            except Exception as exc:  # reported by /ready and the log; the process stays up
                log.exception("loading failed")
                state.status, state.detail = "failed", f"{type(exc).__name__}: {exc}"

        tasks = [asyncio.create_task(load_in_background())]
        if settings.index_reload_interval > 0:
            # FAISS: a new version folder is swapped in. Milvus, pgvector: updated in place by
            # `citeqa index`, so only the statistics read at start are re-read when the files change.
            watcher = IndexWatcher(state) if settings.vector_store == "faiss" else StoreWatcher(state)
            tasks.append(asyncio.create_task(watcher.run(settings.index_reload_interval)))
        try:
            async with mcp_endpoint.running():  # the MCP SDK's session manager (service/api/mcp_mount.py)
                yield
        finally:
            for task in tasks:
                task.cancel()
            await close_store(limiters)
            if state.feedback is not None:
                state.feedback.close()

    metrics = Metrics()
    app = FastAPI(
        title="citeqa",
        version="0.1.0",
        summary="Questions answered from your documents, with a citation to the source file behind every claim.",
        lifespan=lifespan,
    )
    error_responses.install(app)
    app.include_router(router)
    app.include_router(widget_router)
    app.include_router(openai_router)  # /v1/models, /v1/chat/completions (docs/integrations.md)
    mcp_endpoint = mount_mcp(app)
    app.include_router(feedback_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    # Added last is outermost: the request id and access log wrap the body limit's 413s too.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
