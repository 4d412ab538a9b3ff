from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from index.chunking import chunk_document, split_sentences
from index.documents import Document, Skipped, load_corpus, normalise, read_document
from index.tokens import count_tokens

ROOT = Path(__file__).resolve().parents[2]


def _doc(text: str, source: str = "c/a.txt") -> Document:
    norm, line_map = normalise(text)
    return Document(source, norm, tuple(line_map), "x")


def test_normalise_drops_repeated_paragraphs_and_keeps_original_line_numbers() -> None:
    para = "The pair inked a comprehensive partnership agreement yesterday."
    text, line_map = normalise(f"Title\n\n{para}\n\n{para}\n\nLast   line  here, and more words.\n")
    assert text.count(para) == 1
    assert "Last line here" in text
    lines = text.split("\n")
    assert line_map[lines.index("Last line here, and more words.")] == 7


def test_seed_article_with_doubled_paragraphs_is_deduplicated() -> None:
    doc = read_document(ROOT / "seeds/003_e8f2ea9f2bcaae22.txt", ROOT / "seeds")
    assert isinstance(doc, Document)
    assert doc.text.count("Vladimir Putin waved goodbye to his 'fiery friend'") == 1


def test_sentences_split_on_end_punctuation_and_line_breaks() -> None:
    text = 'He said "yes." Then he left!\nA heading\nLast one? Done'
    parts = [text[s.start : s.end] for s in split_sentences(text)]
    assert parts == ['He said "yes."', "Then he left!", "A heading", "Last one?", "Done"]


def test_initials_acronyms_and_titles_do_not_end_a_sentence() -> None:
    text = "It was said by Ambassador Gennady S. Bezdetko. The U.S. Embassy in Hanoi objected. Dr. Kim left.\nNext"
    pieces = [text[s.start : s.end] for s in split_sentences(text)]
    assert pieces == [
        "It was said by Ambassador Gennady S. Bezdetko.",
        "The U.S. Embassy in Hanoi objected.",
        "Dr. Kim left.",
        "Next",
    ]


@pytest.mark.parametrize(("size", "overlap"), [(40, 0), (64, 16), (160, 32)])
def test_chunks_respect_size_overlap_and_spans(size: int, overlap: int) -> None:
    path = ROOT / "seeds/000_cfe940b0310ddd85.txt"
    doc = read_document(path, ROOT / "seeds")
    assert isinstance(doc, Document)
    chunks = chunk_document(doc, size, overlap)
    assert len(chunks) > 1
    original_lines = path.read_text().split("\n")
    for chunk in chunks:
        assert count_tokens(chunk.text) <= size
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text
        # The first sentence of the chunk really is on its start line in the original file.
        first = chunk.text[chunk.sentences[0].start : chunk.sentences[0].end]
        assert first[:30] in original_lines[chunk.start_line - 1]
        assert chunk.start_line <= chunk.end_line
    overlaps = []
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.char_start > prev.char_start  # always advances
        shared = max(0, prev.char_end - nxt.char_start)
        overlaps.append(shared)
        if shared:
            assert count_tokens(doc.text[nxt.char_start : prev.char_end]) <= overlap + 2
    assert (sum(overlaps) > 0) == (overlap > 0)  # an overlap budget is used, and only then
    # Boundaries snap to sentence ends: every chunk ends where a sentence ends, unless that
    # sentence alone is longer than a chunk and had to be cut on token boundaries.
    sentences = split_sentences(doc.text)
    ends = {s.end for s in sentences}
    for chunk in chunks:
        if chunk.char_end not in ends:
            within = next(s for s in sentences if s.start < chunk.char_end < s.end)
            assert count_tokens(doc.text[within.start : within.end]) > size
        assert chunk.sentences[-1].end == len(chunk.text)


def test_overlap_repeats_boundary_sentences() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))
    chunks = chunk_document(_doc(text), 60, 20)
    assert any(chunks[i].char_end > chunks[i + 1].char_start for i in range(len(chunks) - 1))


def test_overlong_sentence_is_split_on_tokens() -> None:
    text = "word " * 500
    chunks = chunk_document(_doc(text.strip() + "."), 50, 0)
    assert len(chunks) >= 10
    assert all(c.n_tokens <= 50 for c in chunks)


def test_invalid_chunk_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        chunk_document(_doc("Hello there."), 32, 32)


def test_unreadable_empty_and_binary_files_are_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "good.md").write_text("# Title\n\nSome real content here.")
    (corpus / "empty.txt").write_text("   \n\n")
    (corpus / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (corpus / "ignored.pdf").write_bytes(b"%PDF")
    import os

    is_root = os.geteuid() == 0  # root reads anything, so only test permissions as a user
    if not is_root:
        locked = corpus / "locked.txt"
        locked.write_text("secret")
        locked.chmod(0)
    docs, skipped = load_corpus(corpus)
    assert [d.source for d in docs] == ["docs/good.md"]
    reasons = {s.source: s.reason for s in skipped}
    assert reasons["docs/empty.txt"] == "empty"
    assert reasons["docs/binary.txt"] == "not UTF-8 text"
    assert all(isinstance(s, Skipped) for s in skipped)
    if not is_root:
        assert reasons["docs/locked.txt"].startswith("unreadable")
