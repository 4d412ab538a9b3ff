"""How the real answerer is put together: the index, the embedder, the prompts and the LLM (the
embedded model read in first, when it is the one configured).

`load_answerer` is the loader `create_app` uses by default; tests pass their own (see
`service.testing.fake_loader`), so no unit test touches model weights. `reload_index` builds an
answerer for a new index version from a running one, reusing everything that does not depend on
the index (the embedder, the LLM client, the prompts, the LLM gate): a hot swap reads files, not
model weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from index.embedder import Embedder
from index.store import IndexData
from service.answer.pipeline import Answerer
from service.answer.question import Question
from service.answer.retrieval import Retriever
from service.llm.queue import LLMGate
from service.settings import Settings

log = logging.getLogger(__name__)

Loader = Callable[[Settings, LLMGate], Answerer]


def check_index(settings: Settings) -> None:
    """Fail fast, before serving, when the index is missing or damaged (the message names the fix)."""
    from index import store

    if settings.vector_store == "milvus":
        from index.milvus_store import MilvusChunkStore, MilvusStoreError

        try:
            built = MilvusChunkStore(settings.milvus_uri).meta() is not None
        except MilvusStoreError as exc:
            raise store.IndexLoadError(str(exc)) from exc
        if not built:
            raise store.IndexLoadError(
                f"no index found in Milvus at {settings.milvus_uri}: run `citeqa index` (or `make index`) to build it"
            )
        return
    if settings.vector_store == "pgvector":
        from index.pgvector_store import PgvectorChunkStore, PgvectorStoreError

        try:
            pg = PgvectorChunkStore(settings.pgvector_dsn, table=settings.pgvector_table)
            try:
                built = pg.meta() is not None
            finally:
                pg.close()
        except PgvectorStoreError as exc:
            raise store.IndexLoadError(str(exc)) from exc
        if not built:
            raise store.IndexLoadError(
                f"no index found in PostgreSQL at {pg.safe_dsn}: run `citeqa index` (or `make index`) to build it"
            )
        return
    store.load(settings.index_dir)


def open_retriever(settings: Settings, embedder: Embedder) -> Retriever:
    """The one place that knows which store holds the chunks (`CITEQA_VECTOR_STORE`): the FAISS
    index on disk with BM25 in process, or a Milvus collection or PostgreSQL tables (an HNSW or IVFFlat
    index and a BM25 postings table) that run both searches themselves.
    Raises `IndexLoadError` when the store cannot serve this embedder."""
    from index import store

    if settings.vector_store == "milvus":
        from index.milvus_store import MilvusChunkStore, MilvusStoreError
        from service.answer.milvus_retriever import MilvusRetriever

        try:
            return MilvusRetriever(
                MilvusChunkStore(settings.milvus_uri, dim=embedder.dim), embedder, rrf_k=settings.rrf_k
            )
        except MilvusStoreError as exc:
            raise store.IndexLoadError(str(exc)) from exc
    if settings.vector_store == "pgvector":
        from index.pgvector_store import PgvectorChunkStore, PgvectorStoreError
        from service.answer.pgvector_retriever import PgvectorRetriever

        try:
            return PgvectorRetriever(
                PgvectorChunkStore(
                    settings.pgvector_dsn,
                    table=settings.pgvector_table,
                    dim=embedder.dim,
                    pool_size=settings.pgvector_pool_size,
                    probes=settings.pgvector_probes,
                ),
                embedder,
                rrf_k=settings.rrf_k,
            )
        except PgvectorStoreError as exc:
            raise store.IndexLoadError(str(exc)) from exc
    from service.answer.retrieval import HybridRetriever

    data = store.load(settings.index_dir)
    check_embedder(data, embedder)
    return HybridRetriever(data, embedder, rrf_k=settings.rrf_k)


def load_answerer(settings: Settings, gate: LLMGate) -> Answerer:
    from index.embedder import SentenceTransformerEmbedder
    from service.answer.prompts import Prompts
    from service.llm.client import LiteLLMClient

    prompts = Prompts.load()
    embedder = SentenceTransformerEmbedder(settings.embedding_model, query_backend=settings.query_encoder)
    retriever = open_retriever(settings, embedder)
    if settings.uses_local_model:
        load_local_model(settings, system_prompt=prompts["answer_system"].render())
    llm = LiteLLMClient(settings)
    log.info(
        "loaded index (%d chunks, %s), query encoder %s, model %s",
        retriever.n_chunks,
        settings.vector_store,
        embedder.query_backend,
        settings.llm_model,
    )
    answerer = Answerer(settings, retriever, embedder, llm, prompts, gate)
    _warm(answerer)
    return answerer


def check_embedder(data: IndexData, embedder: Embedder) -> None:
    """Refuse an index built with another embedding model: its vectors would be compared with
    the question's in a different space, and every answer would be quietly wrong."""
    from index import store

    if data.manifest.embedding_model != embedder.name or data.manifest.dim != embedder.dim:
        raise store.IndexLoadError(
            f"index was built with {data.manifest.embedding_model!r} but the service uses {embedder.name!r}: "
            "run `citeqa index`"
        )


def reload_index(current: Answerer) -> Answerer:
    """An answerer over the version `CURRENT` names now, sharing `current`'s embedder, LLM client,
    prompts and gate. Raises `IndexLoadError` (missing, damaged, other embedding model) and leaves
    `current` untouched: the caller keeps serving it. Blocking; run it in a worker thread."""
    from index import store
    from service.answer.retrieval import HybridRetriever

    settings = current.settings
    data = store.load(settings.index_dir)
    check_embedder(data, current.embedder)
    retriever = HybridRetriever(data, current.embedder, rrf_k=settings.rrf_k)
    answerer = Answerer(settings, retriever, current.embedder, current.llm, current.prompts, current.gate)
    _warm(answerer)
    log.info("loaded index version %s (%d chunks)", data.version, len(data.chunks))
    return answerer


def _warm(answerer: Answerer) -> None:
    started = time.perf_counter()
    # The first retrieval pays one-off costs (ONNX Runtime's first run, the lemma tables): pay them
    # here, so the first question is as quick as the rest.
    answerer.passages_for(Question.read("What do the documents say?"), answerer.settings.top_k)
    log.info("retrieval warmed in %.2f s", time.perf_counter() - started)


def load_local_model(settings: Settings, system_prompt: str | None = None) -> None:
    from service.llm.client import register_local_provider
    from service.llm.embedded import LocalLlama
    from service.llm.model_files import ModelFileError, cached_model, spec_for

    spec = spec_for(settings.llm_model.split("/", 1)[1])
    path = cached_model(spec, settings.model_dir)
    if path is None:
        raise ModelFileError(f"local model {spec.name} is not prepared in {settings.model_dir}: run `citeqa model`")
    local = LocalLlama(path, n_ctx=settings.local_n_ctx, n_threads=settings.local_n_threads)
    if system_prompt:
        started = time.perf_counter()
        local.warm(system_prompt)
        log.info("system prompt read into the model's prefix cache in %.1f s", time.perf_counter() - started)
    register_local_provider(local)
