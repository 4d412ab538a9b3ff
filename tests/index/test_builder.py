from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index import store
from index.builder import build
from index.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[2]


class CountingEmbedder(HashingEmbedder):
    """Counts what it embeds, to prove unchanged files are not re-embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def encode_documents(self, texts, progress=None):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        return super().encode_documents(texts, progress)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", folder)
    return folder


def _build(corpus: Path, index_dir: Path, embedder: HashingEmbedder | None = None, **kw):  # type: ignore[no-untyped-def]
    return build(corpus, index_dir, embedder or CountingEmbedder(), kw.pop("size", 120), kw.pop("overlap", 20), **kw)


def test_build_then_noop_update(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    first = _build(corpus, index_dir)
    assert first.written and len(first.added) == 4 and first.n_chunks > 4
    embedder = CountingEmbedder()
    again = _build(corpus, index_dir, embedder)
    assert not again.written and embedder.embedded == [] and len(again.unchanged) == 4


def test_update_reembeds_only_changed_file_and_drops_deleted(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    _build(corpus, index_dir)
    before = store.load(index_dir)
    changed = corpus / "001_061305c6860d8c50.txt"
    changed.write_text(changed.read_text() + "\nA brand new closing sentence about zebras.\n")
    (corpus / "002_7715699ff9905d8f.txt").unlink()
    embedder = CountingEmbedder()
    report = _build(corpus, index_dir, embedder)
    assert report.updated == ["seeds/001_061305c6860d8c50.txt"]
    assert report.removed == ["seeds/002_7715699ff9905d8f.txt"]
    assert embedder.embedded and all("Bumbling Putin" not in t for t in embedder.embedded)
    after = store.load(index_dir)
    sources = {c.source for c in after.chunks}
    assert "seeds/002_7715699ff9905d8f.txt" not in sources
    assert any("zebras" in c.text for c in after.chunks)
    # Chunks of untouched files kept their stored vectors.
    kept = [i for i, c in enumerate(before.chunks) if c.source == "seeds/000_cfe940b0310ddd85.txt"]
    kept_after = [i for i, c in enumerate(after.chunks) if c.source == "seeds/000_cfe940b0310ddd85.txt"]
    np.testing.assert_array_equal(before.chunk_vectors[kept], after.chunk_vectors[kept_after])
    assert after.faiss_index.ntotal == len(after.chunks)


def test_changed_settings_trigger_rebuild_with_reason(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    _build(corpus, index_dir, size=120)
    report = _build(corpus, index_dir, size=80)
    assert report.written
    assert report.rebuild_reason and "chunk_tokens" in report.rebuild_reason
    assert len(report.added) == 4


def test_damaged_index_is_rebuilt_by_the_next_build(corpus: Path, tmp_path: Path) -> None:
    """How a damaged index is refused at load is tests/system/test_faults.py; here, the builder's
    side: it does not patch a damaged version, it rebuilds."""
    index_dir = tmp_path / "idx"
    _build(corpus, index_dir)
    version = store.current_version(index_dir)
    assert version is not None
    with (version / "chunks.jsonl").open("a") as fh:
        fh.write("garbage\n")
    with pytest.raises(store.IndexLoadError, match="citeqa index"):
        store.load(index_dir)
    report = _build(corpus, index_dir)  # the builder notices and rebuilds
    assert report.written and report.rebuild_reason and "unusable" in report.rebuild_reason
    store.load(index_dir)


def test_unreadable_file_is_reported_not_fatal(corpus: Path, tmp_path: Path) -> None:
    (corpus / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    report = _build(corpus, tmp_path / "idx")
    assert [s.source for s in report.skipped] == ["seeds/bad.txt"]
    assert len(report.added) == 4


def _chunk_keys(index_dir: Path) -> list[tuple[str, int, int]]:
    return [(c.source, c.char_start, c.char_end) for c in store.load(index_dir).chunks]


def test_file_reached_twice_is_indexed_once_under_its_real_name(corpus: Path, tmp_path: Path) -> None:
    """A link to a file inside the corpus, a linked folder and a link to the corpus itself: each
    real file is one document, and incremental runs stay exact (they used to double: 8 -> 32 -> 64)."""
    plain = tmp_path / "plain" / "seeds"  # the same files, no links: what the index must equal
    shutil.copytree(corpus, plain)
    for folder in (corpus, plain):
        (folder / "sub").mkdir()
        (folder / "sub" / "notes.md").write_text("Notes on the Pyongyang zoo. It keeps penguins and a bear.\n")
    (corpus / "alias.txt").symlink_to(corpus / "000_cfe940b0310ddd85.txt")
    (corpus / "again.txt").symlink_to("sub/notes.md")  # relative target
    (corpus / "sub-link").symlink_to(corpus / "sub", target_is_directory=True)
    (corpus / "mirror").symlink_to(".", target_is_directory=True)

    def same_as_plain(step: str) -> None:
        expected = tmp_path / f"expected-{step}"
        _build(plain, expected)
        assert _chunk_keys(tmp_path / "idx") == _chunk_keys(expected), step

    first = _build(corpus, tmp_path / "idx")
    assert sorted(first.added) == sorted(f"seeds/{p.relative_to(plain).as_posix()}" for p in plain.rglob("*.*"))
    assert first.skipped == []
    same_as_plain("first")
    for folder in (corpus, plain):  # a changed file
        seed = folder / "000_cfe940b0310ddd85.txt"
        seed.write_text(seed.read_text() + "\nA closing sentence about zebras.\n")
    report = _build(corpus, tmp_path / "idx")
    assert report.updated == ["seeds/000_cfe940b0310ddd85.txt"] and report.written
    same_as_plain("changed")
    for folder in (corpus, plain):  # an added file
        (folder / "sub" / "new.txt").write_text("A new page about the zoo's flamingos and their keeper.\n")
    report = _build(corpus, tmp_path / "idx")
    assert report.added == ["seeds/sub/new.txt"]
    same_as_plain("added")
    (corpus / "alias.txt").unlink()  # removing a link removes nothing: the real file is still there
    assert not _build(corpus, tmp_path / "idx").written
    same_as_plain("link removed")


def test_symlinks_leaving_the_corpus_are_skipped_with_a_reason(corpus: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (outside / "secret.txt").write_text("The launch code is 0000. Nobody may read this.\n")
    (corpus / "passwd.txt").symlink_to(outside / "passwd")
    (corpus / "ext").symlink_to(outside, target_is_directory=True)
    (corpus / "up").symlink_to("..", target_is_directory=True)
    (corpus / "dangling.md").symlink_to(corpus / "gone.md")
    report = _build(corpus, tmp_path / "idx")  # used to raise ValueError ... is not in the subpath
    reasons = {s.source: s.reason for s in report.skipped}
    assert set(reasons) == {"seeds/passwd.txt", "seeds/ext", "seeds/up", "seeds/dangling.md"}
    assert "outside the corpus folder" in reasons["seeds/passwd.txt"]
    assert str(outside / "passwd") in reasons["seeds/passwd.txt"]
    assert "outside the corpus folder" in reasons["seeds/ext"] and "outside" in reasons["seeds/up"]
    assert reasons["seeds/dangling.md"].startswith("broken symbolic link")
    assert report.written and len(report.added) == 4
    texts = " ".join(c.text for c in store.load(tmp_path / "idx").chunks)
    assert "root:x" not in texts and "launch code" not in texts


def test_nul_and_binary_looking_files_are_skipped_as_binary(corpus: Path, tmp_path: Path) -> None:
    (corpus / "zeros.txt").write_bytes(b"\x00" * 10240)  # used to become 63 chunks
    (corpus / "controls.md").write_bytes(bytes(range(1, 9)) * 1000)  # valid UTF-8, not text
    (corpus / "utf16.txt").write_bytes("Plain words in UTF-16, without a byte order mark.".encode("utf-16-le"))
    # Text with tabs, form feeds and terminal colours is still text.
    (corpus / "log.txt").write_text("Build log\tok\f\n\x1b[32mAll twelve checks passed on the zoo server.\x1b[0m\n")
    report = _build(corpus, tmp_path / "idx")
    reasons = {s.source: s.reason for s in report.skipped}
    assert set(reasons) == {"seeds/zeros.txt", "seeds/controls.md", "seeds/utf16.txt"}
    assert all(reason.startswith("binary file") for reason in reasons.values()), reasons
    assert sorted(report.added)[-1] == "seeds/log.txt" and len(report.added) == 5
    assert {c.source for c in store.load(tmp_path / "idx").chunks} == set(report.added)


def test_one_failing_file_never_stops_the_build(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from index import documents

    real = documents.normalise

    def explode(raw: str) -> tuple[str, list[int]]:
        if "Bumbling Putin" in raw:
            raise RuntimeError("a bug in normalise")
        return real(raw)

    monkeypatch.setattr(documents, "normalise", explode)
    report = _build(corpus, tmp_path / "idx")
    assert [(s.source, s.reason) for s in report.skipped] == [
        ("seeds/002_7715699ff9905d8f.txt", "cannot be indexed (RuntimeError: a bug in normalise)")
    ]
    assert report.written and len(report.added) == 3


def _versions(index_dir: Path) -> set[str]:
    return {p.name for p in index_dir.iterdir() if p.name.startswith("v-")}


def test_previous_version_stays_on_disk_for_replicas_still_loading_it(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    seen = []
    for _ in range(3):
        _build(corpus, index_dir, force=True)
        version = store.current_version(index_dir)
        assert version is not None
        seen.append(version.name)
    assert _versions(index_dir) == set(seen[-2:])  # current and previous; the first one is gone
    assert (index_dir / store.PREVIOUS).read_text() == seen[-2]
    previous = index_dir / seen[-2]
    assert all((previous / name).is_file() for name in (*store.FILES, "manifest.json"))


def test_next_build_cleans_what_a_killed_build_left(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    _build(corpus, index_dir, force=True)
    _build(corpus, index_dir, force=True)
    kept = _versions(index_dir)
    (index_dir / ".staging-v-20200101T000000-99999-1").mkdir()
    (index_dir / ".staging-v-20200101T000000-99999-1" / "chunks.jsonl").write_text("half")
    (index_dir / "v-20200101T000000-99998-1").mkdir()  # switched never: not current, not previous
    (index_dir / "v-20200101T000000-99998-1" / "manifest.json").write_text("{}")
    (index_dir / ".CURRENT.tmp-99999").write_text("v-20200101T000000-99998-1")
    (index_dir / ".PREVIOUS.tmp-99999").write_text("v-x")
    report = _build(corpus, index_dir)  # nothing changed: no new version, but the debris goes
    assert not report.written
    assert sorted(p.name for p in index_dir.iterdir()) == sorted({*kept, "CURRENT", "PREVIOUS", ".lock"})
    store.load(index_dir)


def test_the_vector_index_follows_corpus_size_and_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small corpora get an exact scan; past FLAT_MAX chunks an IVF index whose nprobe is stored in
    the manifest and applied again at load (FAISS does not keep it with the index)."""
    import faiss
    import numpy as np

    from index import store, vector_index
    from index.chunking import Chunk

    rng = np.random.default_rng(0)
    n, dim = 3000, 16
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(f"docs/{i}.txt", f"text {i}", 0, 6, 1, 1) for i in range(n)]

    def manifest() -> store.Manifest:
        return store.Manifest("hashing", dim, 160, 32, "cl100k_base", {})

    small = store.IndexData.create(manifest(), chunks, vectors)
    assert small.manifest.vector_index == "Flat" and small.faiss_index.metric_type == faiss.METRIC_INNER_PRODUCT

    monkeypatch.setattr(vector_index, "FLAT_MAX", 1000)
    big = store.IndexData.create(manifest(), chunks, vectors)
    assert big.manifest.vector_index.startswith("IVF") and big.manifest.nprobe > 0
    store.save(big, tmp_path / "index")
    loaded = store.load(tmp_path / "index")
    assert loaded.manifest.vector_index == big.manifest.vector_index
    assert faiss.extract_index_ivf(loaded.faiss_index).nprobe == big.manifest.nprobe
    # Exact cosines for what it finds: the query's own vector comes first with score 1.
    sims, ids = loaded.faiss_index.search(vectors[:5], 3)
    assert list(ids[:, 0]) == [0, 1, 2, 3, 4]
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5)


def test_the_plan_names_the_files_and_chunks_to_embed_and_progress_reaches_it(corpus: Path, tmp_path: Path) -> None:
    plans: list[tuple[int, int]] = []
    seen: list[tuple[int, int]] = []
    report = _build(
        corpus, tmp_path / "index", plan=lambda f, c: plans.append((f, c)), progress=lambda d, t: seen.append((d, t))
    )
    assert plans == [(len(report.added), report.n_chunks)] and report.n_chunks > 0
    assert seen[-1] == (report.n_chunks, report.n_chunks)
    (corpus / next(iter(sorted(p.name for p in corpus.iterdir())))).write_text("A changed file about lighthouses.\n")
    plans.clear()
    _build(corpus, tmp_path / "index", plan=lambda f, c: plans.append((f, c)))
    assert plans == [(1, 1)]  # only the changed file is embedded


def test_the_lexical_index_is_saved_with_the_vectors_and_read_back_unchanged(corpus: Path, tmp_path: Path) -> None:
    """A service reads BM25 from the version folder instead of lemmatising every chunk at start."""
    from index.lexical import BM25
    from service.answer.words import content_words

    index_dir = tmp_path / "idx"
    _build(corpus, index_dir)
    data = store.load(index_dir)
    assert data.bm25 is not None and data.bm25.n == len(data.chunks)
    fresh = BM25.of_texts(c.embed_text for c in data.chunks)
    assert dict(data.bm25.idf) == pytest.approx(dict(fresh.idf))
    for question in ("Pungsan hunting dogs", "luxury limousine gift", "treaty signed in Pyongyang"):
        terms = content_words(question)
        assert np.allclose(data.bm25.scores(terms), fresh.scores(terms))
        assert data.bm25.top(terms, 5) == fresh.top(terms, 5) != []


def test_a_damaged_lexical_index_is_refused_and_one_saved_without_it_still_loads(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    _build(corpus, index_dir)
    version = store.current_version(index_dir)
    assert version is not None
    matrix = next((version / store.LEXICAL_DIR).glob("data*.npy"))
    original = matrix.read_bytes()
    matrix.write_bytes(original[:-8] + b"\x00" * 8)
    with pytest.raises(store.IndexLoadError, match="damaged"):
        store.load(index_dir)
    # A version written before the lexical index was saved has no such files in its checksums.
    matrix.write_bytes(original)
    raw = json.loads((version / "manifest.json").read_text())
    raw["checksums"] = {k: v for k, v in raw["checksums"].items() if not k.startswith(store.LEXICAL_DIR + "/")}
    (version / "manifest.json").write_text(json.dumps(raw))
    assert store.load(index_dir).bm25 is None
