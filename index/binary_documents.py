"""Read PDF and Word (.docx) files into the same blocks as Markdown and HTML (structure.py).

People keep manuals and policies as PDF and Word files, and a citation into them is only useful if
it says where to look: a PDF's place is its PAGE (what a reader's page box opens), a Word file's
place is its heading path. Both are read with well-kept libraries, pypdf (BSD) and python-docx
(MIT), imported only when such a file is met.

PDF: each page's text layer (pypdf's `extract_text`) is split into paragraphs, and every block
carries its 1-based page, so chunks never cross a page boundary (chunking.py). A block's lines are
lines of the extracted page text, 1-based within its page, at paragraph granularity: a PDF has no
source lines, and the extracted lines are what a user sees on the page. Lines are joined into
paragraphs because the sentence splitter ends a sentence at every newline, and a PDF wraps lines
mid-sentence. The block's anchor is `page=N`, so `file.pdf#page=N` opens a browser's viewer there.

DOCX: the body's paragraphs and tables in order; "Heading 1/2/3..." (and "Title") styles build the
heading path; runs of list paragraphs and each table stay whole blocks, as in Markdown. Lines are
paragraph numbers: the n-th paragraph of the body, a table row counting as one paragraph.

A file these readers cannot index raises `NotIndexable` with a reason the build reports as Skipped:
a PDF without a text layer (a scan: OCR it first), an encrypted or corrupt file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from index.structure import LIST, PROSE, TABLE, Block, _table_pieces

BINARY_SUFFIXES = (".pdf", ".docx")
_SPACES = re.compile(r"\s+")
_HEADING_STYLE = re.compile(r"^heading (\d)$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;…][\"'”’)\]]*$")
# A line much shorter than the page's longest ends its paragraph: a heading, or a paragraph's last line.
SHORT_LINE_SHARE = 0.6


class NotIndexable(Exception):
    """The file is skipped; the message says why (shown in the build's Skipped list)."""


def is_binary_document(suffix: str) -> bool:
    return suffix.lower() in BINARY_SUFFIXES


def read_binary_blocks(suffix: str, raw: bytes) -> list[Block]:
    """The blocks of a PDF or DOCX file, in order; raises NotIndexable when it cannot be read."""
    blocks = _pdf_blocks(raw) if suffix.lower() == ".pdf" else list(_docx_blocks(raw))
    return [b for b in blocks if any(p.strip() for p in b.pieces)]


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


# --- PDF ------------------------------------------------------------------------------------------


def _pdf_blocks(raw: bytes) -> list[Block]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise NotIndexable("encrypted PDF: decrypt it first (e.g. qpdf --decrypt)")
        texts = [page.extract_text() or "" for page in reader.pages]
    except NotIndexable:
        raise
    except Exception as exc:  # pypdf's own errors, and what a damaged file makes its parser raise
        raise NotIndexable(f"corrupt PDF ({type(exc).__name__}: {exc})") from exc
    if not texts:
        raise NotIndexable("corrupt PDF (no pages)")
    blocks = [block for number, text in enumerate(texts, start=1) for block in page_blocks(text, number)]
    if not blocks:
        pages = f"{len(texts)} page{'s' if len(texts) != 1 else ''}"
        raise NotIndexable(f"no text layer; OCR it first ({pages} of images or blank)")
    return blocks


def page_blocks(text: str, page: int) -> list[Block]:
    """One PDF page's text as prose blocks, one per paragraph, with lines of the page text.

    A paragraph ends at a blank line, after a line ending in sentence punctuation, or after a line
    much shorter than the page's longest (a heading, or a paragraph's last line)."""
    lines = [(n, _clean(line)) for n, line in enumerate(text.splitlines(), start=1)]
    widest = max((len(line) for _, line in lines), default=0)
    blocks: list[Block] = []
    run: list[tuple[int, str]] = []

    def flush() -> None:
        if run:
            body = " ".join(line for _, line in run)
            blocks.append(Block(PROSE, (body,), run[0][0], run[-1][0], anchor=f"page={page}", page=page))
            run.clear()

    for number, line in lines:
        if not line:
            flush()
            continue
        run.append((number, line))
        if _SENTENCE_END.search(line) or len(line) < SHORT_LINE_SHARE * widest:
            flush()
    flush()
    return blocks


# --- DOCX -----------------------------------------------------------------------------------------


def _docx_blocks(raw: bytes) -> Iterator[Block]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(raw))
        body = list(document.element.body.iterchildren())
    except Exception as exc:  # PackageNotFoundError, zipfile.BadZipFile, lxml's XMLSyntaxError
        raise NotIndexable(f"corrupt DOCX ({type(exc).__name__}: {exc})") from exc

    heading: list[tuple[int, str]] = []
    items: list[tuple[str, int]] = []  # the pending list's items and their paragraph numbers
    number = 0  # paragraph number: the "line" of a DOCX citation

    def path() -> tuple[str, ...]:
        return tuple(title for _, title in heading)

    def flush_list() -> Iterator[Block]:
        if items:
            lines = tuple(n for _, n in items)
            yield Block(LIST, tuple(t for t, _ in items), lines[0], lines[-1], path(), piece_lines=lines)
            items.clear()

    for element in body:
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "tbl":
            yield from flush_list()
            table = Table(element, document)
            rows: list[tuple[list[str], int]] = []
            for row in table.rows:
                number += 1
                cells: list[str] = []
                for cell in row.cells:  # a merged cell is listed once per grid column it spans
                    text = _clean(cell.text)
                    if not cells or text != cells[-1]:
                        cells.append(text)
                rows.append((cells, number))
            pieces, row_lines = _table_pieces(rows, has_header=len(rows) > 1)
            if pieces:
                yield Block(TABLE, pieces, row_lines[0], row_lines[-1], path(), piece_lines=row_lines)
            continue
        if tag != "p":
            continue
        number += 1
        paragraph = Paragraph(element, document)
        text = _clean(paragraph.text)
        style = paragraph.style.name if paragraph.style is not None and paragraph.style.name else ""
        level = _heading_level(style)
        if level is not None:
            yield from flush_list()
            if text:
                heading = [(lv, t) for lv, t in heading if lv < level] + [(level, text)]
            continue
        if not text:
            continue
        if _is_list_item(paragraph, style):
            items.append((text, number))
            continue
        yield from flush_list()
        yield Block(PROSE, (text,), number, number, path())
    yield from flush_list()


def _heading_level(style: str) -> int | None:
    if style.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(style)
    return int(match.group(1)) if match else None


def _is_list_item(paragraph: object, style: str) -> bool:
    """Numbered or bulleted: a `List ...` style, or numbering set on the paragraph itself."""
    if style.lower().startswith("list"):
        return True
    p_pr = getattr(getattr(paragraph, "_p", None), "pPr", None)
    return p_pr is not None and p_pr.numPr is not None
