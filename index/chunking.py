"""Split documents into token-bounded chunks whose edges fall on sentence or paragraph ends.

Chunks carry character and line spans so a citation can point at the exact lines of the source
file, and the sentence spans inside them so the service can quote only the sentences that matter.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from index.documents import Document
from index.sentences import Span, split_sentences
from index.tokens import get_encoding

# Bump when splitting or chunking changes, so existing indexes are rebuilt rather than mixed.
CHUNKER_VERSION = 2


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


def chunk_document(doc: Document, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Greedily pack whole sentences up to `chunk_tokens`; start each next chunk with the last
    sentences of the previous one, up to `overlap_tokens`, so a fact on a boundary is not lost."""
    if chunk_tokens < 8:
        raise ValueError("chunk_tokens must be at least 8")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError("overlap_tokens must be >= 0 and smaller than chunk_tokens")
    enc = get_encoding()
    units: list[tuple[Span, int]] = []
    for sent in split_sentences(doc.text):
        n = len(enc.encode(doc.text[sent.start : sent.end], disallowed_special=()))
        if n <= chunk_tokens:
            units.append((sent, n))
        else:
            for piece in _hard_split(doc.text, sent, chunk_tokens):
                units.append((piece, len(enc.encode(doc.text[piece.start : piece.end]))))

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
