from __future__ import annotations

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
