"""PDF and DOCX files read into blocks and chunks (index/binary_documents.py), on real files that
Chromium printed and LibreOffice wrote (tests/binary_files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.binary_documents import page_blocks
from index.chunking import chunk_document
from index.documents import Document, load_corpus
from tests.binary_files import FACT, FACT_PAGE, make_office_corpus


@pytest.fixture(scope="session")
def office_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_office_corpus(tmp_path_factory.mktemp("office") / "office")


@pytest.fixture(scope="session")
def loaded(office_corpus: Path) -> tuple[dict[str, Document], dict[str, str]]:
    docs, skipped = load_corpus(office_corpus)
    return {d.source: d for d in docs}, {s.source: s.reason for s in skipped}


def test_the_readable_files_are_indexed_and_the_rest_skipped_with_reasons(loaded: tuple) -> None:
    docs, skipped = loaded
    assert sorted(docs) == ["office/handbook.docx", "office/manual.pdf", "office/notes.txt"]
    assert skipped["office/scan.pdf"].startswith("no text layer; OCR it first")
    assert skipped["office/locked.pdf"].startswith("encrypted PDF")
    assert skipped["office/broken.pdf"].startswith("corrupt PDF (")
    assert skipped["office/broken.docx"].startswith("corrupt DOCX (")
    assert set(skipped) == {"office/scan.pdf", "office/locked.pdf", "office/broken.pdf", "office/broken.docx"}


def test_pdf_chunks_name_their_page_and_never_cross_one(loaded: tuple) -> None:
    manual = loaded[0]["office/manual.pdf"]
    chunks = chunk_document(manual, chunk_tokens=400, overlap_tokens=40)
    assert {c.page for c in chunks} == {1, 2, 3}
    # A chunk holds text of its own page only: each paragraph of it is (part of) one of its blocks.
    for chunk in chunks:
        page_text = [b.text for b in manual.blocks if b.page == chunk.page]
        assert all(any(part in block for block in page_text) for part in chunk.text.split("\n\n")), chunk
        assert chunk.anchor == f"page={chunk.page}"
    fact = [c for c in chunks if FACT in c.text]
    assert [c.page for c in fact] == [FACT_PAGE]
    # Lines count lines of the page's extracted text: the fact comes after the page's heading.
    assert fact[0].line_span(fact[0].text.index(FACT), fact[0].text.index(FACT) + len(FACT))[0] >= 2
    assert all(c.heading == "" for c in chunks)


def test_docx_chunks_carry_the_heading_path_and_paragraph_numbers(loaded: tuple) -> None:
    handbook = loaded[0]["office/handbook.docx"]
    chunks = chunk_document(handbook, chunk_tokens=400, overlap_tokens=40)
    by_text = {c.text: c for c in chunks}
    leave = next(c for t, c in by_text.items() if "thirty-one days" in t)
    assert leave.heading == "Staff handbook › Holidays"
    assert leave.page is None
    booking = next(c for t, c in by_text.items() if "blue ledger" in t)
    assert booking.heading == "Staff handbook › Holidays › Booking leave"
    # The list stays one block, its items one per line, under the same heading.
    assert "Ask the harbour master first\nWrite the dates in ink" in booking.text
    table = next(c for t, c in by_text.items() if "Foghorn key" in t)
    assert table.heading == "Staff handbook › Equipment"
    assert "Item: Foghorn key | Location: Drawer seven" in table.text
    # Paragraph numbers: the heading, welcome text and the Holidays heading come before the leave.
    assert 1 < leave.start_line < booking.start_line < table.start_line


def test_page_text_is_split_into_paragraphs_at_sentence_ends_and_short_lines() -> None:
    text = "Title\nA long line of prose that wraps to the next\nline and ends here.\n\nLast one"
    blocks = page_blocks(text, 4)
    assert [b.text for b in blocks] == [
        "Title",
        "A long line of prose that wraps to the next line and ends here.",
        "Last one",
    ]
    assert [(b.start_line, b.end_line, b.page) for b in blocks] == [(1, 1, 4), (2, 3, 4), (5, 5, 4)]
