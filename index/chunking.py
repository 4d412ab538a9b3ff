"""Split documents into token-bounded chunks whose edges fall on sentence or paragraph ends.

Chunks carry character and line spans so a citation can point at the exact lines of the source
file, and the sentence spans inside them so the service can quote only the sentences that matter.

Markdown, HTML, reStructuredText, PDF and DOCX documents arrive as blocks (structure.py,
rst_blocks.py, binary_documents.py). Their
chunks never cross a section boundary (nor a PDF page) and carry the section's heading path (and
the page); a code block, list, table or definition list is
one unit (one "sentence") when it fits in a chunk, and otherwise is split only between its items.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from index.documents import Document
from index.sentences import Span, split_sentences
from index.structure import HEADING_SEPARATOR, PROSE
from index.tokens import get_encoding

# Bump when splitting or chunking changes, so existing indexes are rebuilt rather than mixed.
CHUNKER_VERSION = 6  # 5: PDF and DOCX files, chunks carry a PDF page; 6: reStructuredText read as sections


@dataclass
class Chunk:
    source: str
    text: str
    char_start: int  # offsets into the document's normalised text
    char_end: int
    start_line: int  # 1-based lines of the original file
    end_line: int
    sentences: list[Span] = field(default_factory=list)  # offsets into `text`
    n_tokens: int = 0
    lines: list[int] = field(default_factory=list)  # original line number of each line of `text`
    heading: str = ""  # the section's heading path, "A › B" (Markdown and HTML)
    anchor: str = ""  # the nearest element id in the source (HTML), for a link to the place
    page: int | None = None  # the 1-based page of a PDF source; a chunk never crosses a page

    @property
    def embed_text(self) -> str:
        """What the chunk is embedded and searched by: its heading path says what it is about."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    def line_span(self, start: int, end: int) -> tuple[int, int]:
        """Original-file lines covered by `text[start:end]`."""
        if not self.lines:
            return self.start_line, self.end_line
        first = self.text.count("\n", 0, start)
        last = self.text.count("\n", 0, max(start, end - 1))
        return self.lines[min(first, len(self.lines) - 1)], self.lines[min(last, len(self.lines) - 1)]


def _hard_split(text: str, span: Span, max_tokens: int) -> list[Span]:
    """Split one over-long sentence on token boundaries (no sentence end to snap to)."""
    enc = get_encoding()
    tokens = enc.encode(text[span.start : span.end], disallowed_special=())
    pieces, offset = [], span.start
    for i in range(0, len(tokens), max_tokens):
        piece = enc.decode(tokens[i : i + max_tokens])
        pieces.append(Span(offset, min(offset + len(piece), span.end)))
        offset += len(piece)
    return [p for p in pieces if p.end > p.start]


def _line_of(doc: Document, line_starts: list[int], offset: int) -> int:
    return doc.line_map[bisect_right(line_starts, offset) - 1]


def _units(doc: Document, spans: list[Span], chunk_tokens: int) -> list[tuple[Span, int]]:
    """Token-counted units; a span over the budget is hard-split."""
    enc = get_encoding()
    units: list[tuple[Span, int]] = []
    for span in spans:
        n = len(enc.encode(doc.text[span.start : span.end], disallowed_special=()))
        if n <= chunk_tokens:
            units.append((span, n))
        else:
            for piece in _hard_split(doc.text, span, chunk_tokens):
                units.append((piece, len(enc.encode(doc.text[piece.start : piece.end]))))
    return units


def _check(chunk_tokens: int, overlap_tokens: int) -> None:
    if chunk_tokens < 8:
        raise ValueError("chunk_tokens must be at least 8")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError("overlap_tokens must be >= 0 and smaller than chunk_tokens")


def chunk_document(doc: Document, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Greedily pack whole sentences up to `chunk_tokens`; start each next chunk with the last
    sentences of the previous one, up to `overlap_tokens`, so a fact on a boundary is not lost."""
    _check(chunk_tokens, overlap_tokens)
    if doc.blocks:
        return _chunk_sections(doc, chunk_tokens, overlap_tokens)
    return _pack(doc, _units(doc, split_sentences(doc.text), chunk_tokens), chunk_tokens, overlap_tokens)


def _block_spans(doc: Document, index: int, chunk_tokens: int) -> list[Span]:
    """A block's units: prose by sentence; anything else whole if it fits, else by item."""
    block, start = doc.blocks[index], doc.block_starts[index]
    text = block.text
    if block.kind == PROSE:
        return [Span(start + s.start, start + s.end) for s in split_sentences(text)]
    if len(get_encoding().encode(text, disallowed_special=())) <= chunk_tokens:
        return [Span(start, start + len(text))]
    spans, offset = [], start
    for piece in block.pieces:
        if piece.strip():
            spans.append(Span(offset, offset + len(piece)))
        offset += len(piece) + 1  # the newline between pieces
    return spans


def _chunk_sections(doc: Document, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    i = 0
    while i < len(doc.blocks):
        j = i
        while j < len(doc.blocks) and (doc.blocks[j].heading, doc.blocks[j].page) == (
            doc.blocks[i].heading,
            doc.blocks[i].page,
        ):
            j += 1
        spans = [span for k in range(i, j) for span in _block_spans(doc, k, chunk_tokens)]
        heading = HEADING_SEPARATOR.join(doc.blocks[i].heading)
        for chunk in _pack(doc, _units(doc, spans, chunk_tokens), chunk_tokens, overlap_tokens):
            first = bisect_right(doc.block_starts, chunk.char_start) - 1
            last = bisect_right(doc.block_starts, chunk.char_end - 1) - 1
            chunk.heading, chunk.anchor, chunk.page = heading, doc.blocks[first].anchor, doc.blocks[i].page
            if chunk.char_end == doc.block_starts[last] + len(doc.blocks[last].text):
                chunk.end_line = doc.blocks[last].end_line  # a prose block's lines are joined in `text`
            chunks.append(chunk)
        i = j
    return chunks


def _pack(doc: Document, units: list[tuple[Span, int]], chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    enc = get_encoding()
    line_starts = [0] + [m.end() for m in re.finditer("\n", doc.text)]
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        # +1 per join: the whitespace between sentences can cost a token of its own.
        while j < len(units) and total + units[j][1] + (j > i) <= chunk_tokens:
            total += units[j][1] + (j > i)
            j += 1
        j = max(j, i + 1)
        group = units[i:j]
        start, end = group[0][0].start, group[-1][0].end
        chunks.append(
            Chunk(
                source=doc.source,
                text=doc.text[start:end],
                char_start=start,
                char_end=end,
                start_line=_line_of(doc, line_starts, start),
                end_line=_line_of(doc, line_starts, end - 1),
                sentences=[Span(s.start - start, s.end - start) for s, _ in group],
                n_tokens=len(enc.encode(doc.text[start:end], disallowed_special=())),
                lines=list(doc.line_map[bisect_right(line_starts, start) - 1 : bisect_right(line_starts, end - 1)]),
            )
        )
        if j >= len(units):
            break
        # Step back over trailing sentences that fit in the overlap budget, always advancing.
        back, kept = j, 0
        while back - 1 > i and kept + units[back - 1][1] <= overlap_tokens:
            back -= 1
            kept += units[back][1]
        i = back
    return chunks
