"""The Milvus store, builder and retriever against a real Milvus Lite database in a temp folder:
hybrid search finds a chunk by a rare word (the engine's BM25) and by meaning (dense), updates are
incremental, citations survive the round trip, and the idf equals the local BM25's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install '.[milvus]')")
pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[milvus]')")

from index.chunking import Chunk, chunk_document
from index.documents import load_corpus
from index.embedder import HashingEmbedder, ProgressFn
from index.milvus_build import build_milvus
from index.milvus_store import DimensionMismatchError, MilvusChunkStore, _df_parts
from service.answer.milvus_retriever import MilvusRetriever
from service.answer.retrieval import BM25
from service.answer.words import content_words

TOKENS, OVERLAP = 64, 8

DOCS = {
    "zoo.md": (
        "# Animals\n\nThe zoo keeps lions and tigers in large open enclosures near the river.\n\n"
        "## Birds\n\nFlamingos stand on one leg in the shallow pond all afternoon.\n\n"
        "## Night house\n\nThe aye-aye Quoxaldrin was born in the night house in March.\n"
    ),
    "trains.txt": (
        "The night train to Vienna leaves at ten and arrives before breakfast.\n"
        "Sleeping cars have two or four berths and a small washbasin.\n"
    ),
    "garden.md": (
        "# Garden\n\nTomatoes need sun, water and a stake to climb.\n\n"
        "## Compost\n\nKitchen scraps become compost after a few months of turning.\n"
    ),
}


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts it embeds for documents."""

    def __init__(self, dim: int = 256) -> None:
        super().__init__(dim)
        self.embedded: list[str] = []

    def encode_documents(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        self.embedded.extend(texts)
        return super().encode_documents(texts, progress)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return str(tmp_path / "milvus.db")


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def built(corpus: Path, uri: str, embedder: CountingEmbedder) -> Iterator[MilvusChunkStore]:
    report = build_milvus(corpus, uri, embedder, TOKENS, OVERLAP)
    assert sorted(Path(s).name for s in report.added) == sorted(DOCS)
    assert report.n_embedded == report.n_chunks == len(embedder.embedded) > len(DOCS)
    store = MilvusChunkStore(uri, dim=embedder.dim)
    store.ensure()
    yield store


def local_chunks(corpus: Path) -> list[Chunk]:
    docs, _ = load_corpus(corpus)
    return [c for d in docs for c in chunk_document(d, TOKENS, OVERLAP)]


def source_of(corpus: Path, name: str) -> str:
    docs, _ = load_corpus(corpus)
    return next(d.source for d in docs if Path(d.source).name == name)


def test_rare_word_is_found_by_the_engines_bm25(built: MilvusChunkStore, embedder: CountingEmbedder) -> None:
    # A query vector that points nowhere near the chunk: only the BM25 leg can find it.
    unrelated = embedder.encode_query("tomatoes compost kitchen garden stake")
    hits = built.hybrid_search(unrelated, "Quoxaldrin", k=3)
    assert "Quoxaldrin" in hits[0].chunk.text
    assert hits[0].chunk.heading.endswith("Night house")


def test_meaning_is_found_by_the_dense_leg(built: MilvusChunkStore, embedder: CountingEmbedder) -> None:
    # Only stopwords in the text: the dense leg alone ranks.
    vector = embedder.encode_query("sleeping cars berths washbasin")
    hits = built.hybrid_search(vector, "what is it about", k=3)
    assert "berths" in hits[0].chunk.text
    assert hits[0].dense == pytest.approx(float(embedder.encode_query(hits[0].chunk.embed_text) @ vector), abs=1e-5)
    assert hits[0].dense > hits[-1].dense


def test_retriever_returns_hits_with_citation_metadata(
    built: MilvusChunkStore, embedder: CountingEmbedder, corpus: Path
) -> None:
    retriever = MilvusRetriever(built, embedder)
    result = retriever.retrieve("When was the aye-aye Quoxaldrin born?", top_k=3)
    assert result.query_vector.shape == (embedder.dim,)
    assert len(result.hits) == 3
    assert [h.fused for h in result.hits] == sorted((h.fused for h in result.hits), reverse=True)
    top = result.hits[0]
    expected = next(c for c in local_chunks(corpus) if "Quoxaldrin" in c.text)
    assert top.chunk == expected  # source, lines, heading, anchor and sentence spans round-trip
    assert Path(top.chunk.source).name == "zoo.md"
    assert top.chunk.heading == "Animals › Night house"
    assert top.chunk.start_line == top.chunk.end_line == 11  # the line in zoo.md
    assert top.chunk.sentences and top.chunk.lines


def test_rarity_equals_the_local_bm25_idf(built: MilvusChunkStore, embedder: CountingEmbedder, corpus: Path) -> None:
    chunks = local_chunks(corpus)
    local = BM25([content_words(c.embed_text) for c in chunks]).idf
    rarity = MilvusRetriever(built, embedder).rarity
    assert set(rarity) == set(local)
    for word, idf in local.items():
        assert rarity[word] == pytest.approx(idf, rel=1e-12), word
    assert rarity.unseen == pytest.approx(local.unseen)
    assert built.stats().n_chunks == len(chunks) == built.count()


def test_the_retriever_sees_when_the_stored_files_change_and_re_reads_rarity(
    built: MilvusChunkStore, embedder: CountingEmbedder, corpus: Path, uri: str
) -> None:
    """What a running service's StoreWatcher relies on (service/api/reload.py)."""
    retriever = MilvusRetriever(built, embedder)
    before, chunks_before = retriever.version, retriever.n_chunks
    assert not retriever.changed() and "funicular" not in retriever.rarity
    (corpus / "lift.txt").write_text("The Brakkenlift funicular climbs the hill every twenty minutes.\n")
    build_milvus(corpus, uri, CountingEmbedder(), TOKENS, OVERLAP, store=built)
    assert retriever.changed()
    assert "funicular" not in retriever.rarity  # nothing re-read until asked
    retriever.refresh()
    assert not retriever.changed() and retriever.version != before
    assert retriever.n_chunks == chunks_before + 1 == built.count()
    local = BM25([content_words(c.embed_text) for c in local_chunks(corpus)]).idf
    assert retriever.rarity["funicular"] == pytest.approx(local["funicular"], rel=1e-12)
    (corpus / "lift.txt").unlink()
    build_milvus(corpus, uri, CountingEmbedder(), TOKENS, OVERLAP, store=built)
    assert retriever.changed()  # a deleted file changes the digest too
    assert built.files_digest() == before.split("@")[1]  # the files are those of the start again


def test_unchanged_corpus_embeds_nothing(built: MilvusChunkStore, corpus: Path, uri: str) -> None:
    again = CountingEmbedder()
    report = build_milvus(corpus, uri, again, TOKENS, OVERLAP)
    assert again.embedded == [] and report.n_embedded == 0
    assert len(report.unchanged) == len(DOCS) and not (report.added or report.updated or report.removed)
    assert not report.written


def test_a_reopened_database_is_updated_and_searched(built: MilvusChunkStore, corpus: Path, uri: str) -> None:
    # What a new process sees: the collections exist on disk but are not loaded.
    for name in (built.collection, built.files_collection):
        built.client.release_collection(name)
    (corpus / "garden.md").write_text("# Garden\n\nThe gardener Wexmorrow grows pumpkins.\n")
    again = CountingEmbedder()
    report = build_milvus(corpus, uri, again, TOKENS, OVERLAP)
    assert report.updated == [source_of(corpus, "garden.md")] and not report.rebuild_reason
    for name in (built.collection, built.files_collection):
        built.client.release_collection(name)
    hits = MilvusRetriever(MilvusChunkStore(uri, dim=again.dim), again).retrieve("Wexmorrow", top_k=1).hits
    assert "Wexmorrow" in hits[0].chunk.text


def test_changed_file_is_the_only_one_re_embedded(built: MilvusChunkStore, corpus: Path, uri: str) -> None:
    (corpus / "trains.txt").write_text("The funicular Brakkenlift climbs the hill every twenty minutes.\n")
    again = CountingEmbedder()
    report = build_milvus(corpus, uri, again, TOKENS, OVERLAP)
    trains = source_of(corpus, "trains.txt")
    assert report.updated == [trains] and not report.added and not report.removed
    assert again.embedded == [c.embed_text for c in local_chunks(corpus) if c.source == trains]
    hits = built.hybrid_search(again.encode_query("funicular"), "Brakkenlift", k=5)
    assert "Brakkenlift" in hits[0].chunk.text
    assert not any("Vienna" in h.chunk.text for h in hits)
    assert built.count() == built.stats().n_chunks == len(local_chunks(corpus))
    # The idf follows the update.
    local = BM25([content_words(c.embed_text) for c in local_chunks(corpus)]).idf
    assert MilvusRetriever(built, again).rarity == pytest.approx(dict(local))


def test_deleted_file_leaves_search(built: MilvusChunkStore, corpus: Path, uri: str) -> None:
    zoo = source_of(corpus, "zoo.md")
    (corpus / "zoo.md").unlink()
    again = CountingEmbedder()
    report = build_milvus(corpus, uri, again, TOKENS, OVERLAP)
    assert report.removed == [zoo] and report.n_embedded == 0
    assert zoo not in built.files()
    hits = built.hybrid_search(again.encode_query("Quoxaldrin aye-aye"), "Quoxaldrin aye-aye", k=10)
    assert hits and all(h.chunk.source != zoo for h in hits)
    assert built.count() == built.stats().n_chunks == len(local_chunks(corpus))
    assert "quoxaldrin" not in built.stats().df


def test_other_dimension_is_refused_with_a_clear_error(built: MilvusChunkStore, uri: str) -> None:
    with pytest.raises(DimensionMismatchError, match=r"holds 256-dim vectors .* 128-dim"):
        MilvusChunkStore(uri, dim=128).ensure()
    with pytest.raises(DimensionMismatchError, match="256-dim"):
        MilvusRetriever(MilvusChunkStore(uri, dim=128), HashingEmbedder(128))


def test_other_settings_rebuild(built: MilvusChunkStore, corpus: Path, uri: str) -> None:
    small = HashingEmbedder(128)
    report = build_milvus(corpus, uri, small, TOKENS, OVERLAP)
    assert report.rebuild_reason and "dim changed (256 -> 128)" in report.rebuild_reason
    assert sorted(Path(s).name for s in report.added) == sorted(DOCS)
    assert MilvusChunkStore(uri, dim=128).stored_dim() == 128
    report = build_milvus(corpus, uri, small, TOKENS + 16, OVERLAP)
    assert report.rebuild_reason and "chunk_tokens changed" in report.rebuild_reason


def test_df_tables_are_split_under_the_json_cap() -> None:
    df = {f"word{i:05d}": i for i in range(5000)}
    parts = _df_parts(df, limit=4000)
    assert len(parts) > 1
    merged: dict[str, int] = {}
    for part in parts:
        assert len(str(part)) < 4000
        merged.update(part)
    assert merged == df


def test_a_lite_file_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    """Milvus Lite opens its file in one process only: `citeqa index` beside a running serve."""
    import subprocess
    import sys

    path = tmp_path / "held.db"
    holder = MilvusChunkStore(str(path), dim=8)
    holder.ensure()
    code = (
        "import sys; from index.milvus_store import MilvusChunkStore, MilvusStoreError\n"
        f"try:\n    MilvusChunkStore({str(path)!r}, dim=8)\nexcept MilvusStoreError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 3, done.stderr[-500:]
    assert "one process at a time" in done.stdout
