"""Hot swap of the index: a running service notices that `CURRENT` names a new version and
serves it from the next request on, without a restart.

Why it is safe: every request takes `state.answerer` once (`dependencies.get_answerer`) and keeps
that reference to the end, so a request in flight finishes on the version it started with. The
new answerer is built completely in a worker thread (the event loop keeps serving), and only then
put in place with one assignment. Until the old one's last request ends both versions are in
memory, so a replica needs room for two indexes.

Why the poll is cheap: it reads the small `CURRENT` file and compares the name with the version
loaded; only a change costs a load. A version that fails to load (damaged, missing folder, another
embedding model) is logged, counted and remembered: the old version keeps serving, and the next
attempt waits for `CURRENT` to change again instead of re-reading a broken index every poll.

Milvus and pgvector are updated in place, so there is no version to swap: `StoreWatcher` instead
compares a digest of the stored file records with the one its statistics were read from and, once
a change has settled, re-reads word rarity and the chunk count (service/answer/served_lexicon.py).
Search itself sees every committed file at once.
"""

from __future__ import annotations

import asyncio
import logging

from index import store
from service.answer.loading import reload_index
from service.answer.served_lexicon import Lexicon, LexiconHolder
from service.api.state import AppState

log = logging.getLogger(__name__)


class IndexWatcher:
    """Polls `CURRENT` for one app; `check` is one poll (the tests call it directly too)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.failed: str | None = None  # the version that last failed to load: not retried

    async def check(self) -> bool:
        """Load and swap in the version `CURRENT` names if it is new; True when it swapped."""
        state = self.state
        current = state.answerer
        if current is None:  # still loading, or loading failed: the start-up path reports that
            return False
        index_dir = state.settings.index_dir
        name = await asyncio.to_thread(store.current_name, index_dir)
        if name is None or name == current.retriever.version or name == self.failed:
            return False
        log.info(
            "index version %s found in %s; loading it, %s serves meanwhile", name, index_dir, current.retriever.version
        )
        try:
            fresh = await asyncio.to_thread(reload_index, current)
            if not fresh.retriever.n_chunks:
                raise store.IndexLoadError("the new index holds no documents; the previous version stays")
        except Exception as exc:  # any failure keeps the old version serving
            self.failed = name
            state.reload_error = f"index version {name}: {type(exc).__name__}: {exc}"
            state.metrics.index_reloads.labels("failed").inc()
            log.error("could not load index version %s, still serving %s: %s", name, current.retriever.version, exc)
            return False
        state.answerer = fresh  # the swap: one assignment; requests in flight keep the old one
        self.failed, state.reload_error = None, None
        state.metrics.index_reloads.labels("ok").inc()
        state.metrics.record_index(fresh.retriever.version, fresh.retriever.n_chunks)
        log.info("now serving index version %s (%d chunks)", fresh.retriever.version, fresh.retriever.n_chunks)
        return True

    async def run(self, interval: float) -> None:
        """Poll every `interval` seconds until cancelled; an unexpected error never ends the loop."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("index reload check failed")


class StoreWatcher:
    """Polls a Milvus or pgvector store for one app; `check` is one poll (the tests call it too).

    A change is acted on once the digest has held still for one interval: during a build the
    files change every moment, and re-reading the whole df table on every poll of every replica
    would load the database for nothing while the corpus is half written."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.pending: str | None = None  # a new digest seen on the last poll, not yet acted on
        self.polls = 0

    async def check(self) -> bool:
        """Re-read the store's statistics if its files changed and have settled; True when it did.
        A failure (the engine down, an empty store, a store rebuilt with another embedding model)
        is logged, counted and shown in /ready's `reload_error`, and the statistics already held
        keep serving."""
        current = self.state.answerer
        retriever = current.retriever if current is not None else None
        if not isinstance(retriever, LexiconHolder):  # FAISS: IndexWatcher's business
            return False
        self.polls += 1
        try:
            digest = await asyncio.to_thread(retriever.store.files_digest)
        except Exception as exc:
            return self._failed(f"cannot read the store: {type(exc).__name__}: {exc}")
        if digest == retriever.fingerprint:
            self.pending = None
            self._clear()
            return False
        if digest != self.pending:  # new, or still changing: look again next interval
            self.pending = digest
            return False
        before = retriever.version
        try:
            problem = await asyncio.to_thread(retriever.incompatible)
            fresh = None if problem else await asyncio.to_thread(Lexicon.read, retriever.store)
        except Exception as exc:
            return self._failed(f"cannot read the store: {type(exc).__name__}: {exc}")
        if problem or fresh is None:
            return self._failed(problem or "no statistics")
        if not fresh.n_chunks:
            return self._failed("the store now holds no documents; the previous statistics stay")
        retriever.use(fresh)
        self.pending = None
        self._clear()
        self.state.metrics.index_reloads.labels("ok").inc()
        self.state.metrics.record_index(retriever.version, retriever.n_chunks)
        log.info("the stored files changed (%s -> %s): %d chunks now", before, retriever.version, retriever.n_chunks)
        return True

    def _failed(self, why: str) -> bool:
        message = f"store statistics: {why}"
        if message != self.state.reload_error:  # once per new problem, not every poll
            self.state.metrics.index_reloads.labels("failed").inc()
            log.error("%s; the statistics read before keep serving", message)
        self.state.reload_error = message
        return False

    def _clear(self) -> None:
        if self.state.reload_error and self.state.reload_error.startswith("store statistics:"):
            log.info("store statistics readable again")
            self.state.reload_error = None

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("store statistics check failed")
