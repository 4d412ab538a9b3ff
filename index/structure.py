"""Read Markdown, HTML and reStructuredText as what they are: sections under a heading path, of blocks.

A technical page's answer sits in an option list, a code block or a table row as often as in a
sentence, and the sentence splitter that suits prose cuts those apart. So these formats are parsed
with well-kept parsers (markdown-it-py, Beautiful Soup) into blocks that keep their kind: prose is
later split into sentences, while a code block, list, table or definition list is kept whole when
it fits in a chunk, and otherwise split only between its items (list items, table rows, term and
definition pairs, code lines). Every block knows its heading path ("Joins Between Tables ›
Outer joins"), its lines in the source file and, for HTML, the nearest element id, so a citation
can point at the place. reStructuredText is parsed by docutils in rst_blocks.py, which this module
dispatches to. Plain text has no such structure and is read as before (documents.py).

What this module makes of a file is part of the index: bump CHUNKER_VERSION (chunking.py) when the
blocks it yields change, so existing indexes are rebuilt rather than mixed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

PROSE, CODE, LIST, TABLE, DEFINITIONS = "prose", "code", "list", "table", "definitions"
HEADING_SEPARATOR = " › "
STRUCTURED_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".rst")
_SPACES = re.compile(r"\s+")  # newlines too: HTML and Markdown wrap prose lines freely
# Navigation bars, breadcrumbs and "Prev | Up | Next" tables are made of links; a block whose text
# is mostly link text and short is boilerplate, not content (the usual boilerplate-removal test).
MAX_LINK_SHARE = 0.7
MAX_LINK_BLOCK_CHARS = 400


@dataclass(frozen=True)
class Block:
    kind: str  # PROSE, CODE, LIST, TABLE or DEFINITIONS
    pieces: tuple[str, ...]  # the items a block may be split between; prose has one piece
    start_line: int  # 1-based lines of the source file
    end_line: int
    heading: tuple[str, ...] = ()  # the heading path the block sits under
    anchor: str = ""  # the nearest element id (HTML), for a link to the place
    piece_lines: tuple[int, ...] = ()  # the source line each piece starts on, when known
    page: int | None = None  # the 1-based page of a PDF (binary_documents.py); None elsewhere

    def line_of_piece(self, index: int, line_in_piece: int = 0) -> int:
        """The source line of a line of a piece, within the block's span."""
        first = self.piece_lines[index] if index < len(self.piece_lines) else self.start_line
        return min(max(first + line_in_piece, self.start_line), self.end_line)

    @property
    def text(self) -> str:
        return "\n".join(self.pieces)


def is_structured(suffix: str) -> bool:
    return suffix.lower() in STRUCTURED_SUFFIXES


def read_blocks(suffix: str, text: str) -> list[Block]:
    """The blocks of a Markdown, HTML or reStructuredText document, in order; empty blocks are
    dropped. reStructuredText that docutils cannot read at all raises (documents.py then reads it as
    plain text)."""
    suffix = suffix.lower()
    if suffix == ".rst":
        from index.rst_blocks import rst_blocks  # imported when used, as docutils is

        blocks: Iterable[Block] = rst_blocks(text)
    elif suffix in (".md", ".markdown"):
        blocks = _markdown_blocks(text)
    else:
        blocks = _html_blocks(text)
    return [b for b in blocks if any(p.strip() for p in b.pieces)]


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


# --- Markdown -----------------------------------------------------------------------------------


def _markdown_blocks(text: str) -> Iterator[Block]:
    from markdown_it import MarkdownIt  # imported when used: plain-text corpora never need it

    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    heading: list[tuple[int, str]] = []  # (level, title)

    def source(start: int, end: int) -> list[str]:
        return [ln.rstrip() for ln in lines[start:end]]

    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.level != 0 or token.map is None:
            i += 1
            continue
        start, end = token.map
        close = _closing(tokens, i)
        path = tuple(title for _, title in heading)
        if token.type == "heading_open":
            level = int(token.tag[1])
            heading = [(lv, t) for lv, t in heading if lv < level] + [(level, _clean(tokens[i + 1].content))]
        elif token.type in ("fence", "code_block"):
            code = source(start, end)
            yield Block(CODE, tuple(code), start + 1, end, path, piece_lines=tuple(range(start + 1, end + 1)))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            items = [t.map for t in tokens[i:close] if t.type == "list_item_open" and t.level == 1 and t.map]
            pieces = tuple("\n".join(source(a, b)).strip("\n") for a, b in items)
            yield Block(LIST, pieces, start + 1, end, path, piece_lines=tuple(a + 1 for a, _ in items))
        elif token.type == "table_open":
            rows: list[tuple[list[str], int]] = []  # each row's cells and first line
            for j in range(i, close):
                t = tokens[j]
                if t.type == "tr_open" and t.map:
                    rows.append(([], t.map[0] + 1))
                elif t.type in ("th_open", "td_open") and rows:
                    rows[-1][0].append(_clean(tokens[j + 1].content))
            has_header = any(t.type == "thead_open" for t in tokens[i:close])
            pieces, row_lines = _table_pieces(rows, has_header)
            yield Block(TABLE, pieces, start + 1, end, path, piece_lines=row_lines)
        elif token.type in ("paragraph_open", "blockquote_open", "html_block"):
            body = " ".join(_clean(ln) for ln in source(start, end) if ln.strip())
            yield Block(PROSE, (body,), start + 1, end, path)
        i = close + 1


def _table_pieces(rows: list[tuple[list[str], int]], has_header: bool) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """One piece per row. Under a header row, each cell is labelled with its column ("Name:
    smallint | Storage Size: 2 bytes"), so a row read alone, as a chunk of a long table is, still
    says what its values are; the header row itself then adds nothing and is left out."""
    rows = [(cells, line) for cells, line in rows if any(cells)]
    if has_header and len(rows) > 1:
        header, body = rows[0][0], rows[1:]
        labelled = [
            (" | ".join(f"{h}: {c}" if h and c else c for h, c in zip(header, cells, strict=False)), line)
            if len(cells) == len(header)
            else (" | ".join(cells), line)
            for cells, line in body
        ]
        return tuple(t for t, _ in labelled), tuple(line for _, line in labelled)
    return tuple(" | ".join(cells) for cells, _ in rows), tuple(line for _, line in rows)


def _closing(tokens: list, i: int) -> int:
    """The index of the token that closes tokens[i] (itself when it opens nothing)."""
    if tokens[i].nesting != 1:
        return i
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


# --- HTML -------------------------------------------------------------------------------------------

_SKIP = {"script", "style", "template", "noscript", "nav", "header", "footer", "aside", "head", "title"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_PROSE_TAGS = {"p", "blockquote", "address", "figcaption", "caption"}


def _html_blocks(text: str) -> Iterator[Block]:
    from bs4 import BeautifulSoup, NavigableString, Tag  # imported when used

    soup = BeautifulSoup(text, "html.parser")  # html.parser records each tag's source line
    root = soup.body or soup
    title = _clean(soup.title.get_text()) if soup.title else ""
    heading: list[tuple[int, str]] = []

    def path() -> tuple[str, ...]:
        """The heading path, under the page's title unless the page's own first heading says it:
        on a reference page the sections are "Options" and "Notes", and only the title says of what."""
        titles = tuple(t for _, t in heading)
        return titles if not title or (titles and titles[0] == title) else (title, *titles)

    pending: list[str] = []  # loose text between blocks, flushed as prose
    pending_line = 0

    def end_line(tag: Tag) -> int:
        return (tag.sourceline or 1) + str(tag).count("\n")

    def anchor(tag: Tag) -> str:
        node: Tag | None = tag
        while node is not None:
            if isinstance(node, Tag) and node.get("id"):
                return str(node.get("id"))
            node = node.parent
        return ""

    def flat(tag: Tag) -> str:
        return _clean(tag.get_text(" "))

    def is_boilerplate(tag: Tag, body: str) -> bool:
        if not body or len(body) > MAX_LINK_BLOCK_CHARS:
            return False
        linked = sum(len(_clean(a.get_text(" "))) for a in tag.find_all("a"))
        navigation = tag.name == "table" and str(tag.get("summary", "")).lower().startswith("navigation")
        return navigation or linked / len(body) > MAX_LINK_SHARE

    def block(kind: str, tag: Tag, pieces: Iterable[tuple[str, int]]) -> Block | None:
        """`pieces`: each item's text and the source line it starts on."""
        kept = [(text, line) for text, line in pieces if text.strip()]
        if not kept or is_boilerplate(tag, _clean(" ".join(t for t, _ in kept))):
            return None
        start = tag.sourceline or 1
        return Block(
            kind,
            tuple(t for t, _ in kept),
            start,
            end_line(tag),
            path(),
            anchor(tag),
            tuple(line for _, line in kept),
        )

    def rows(table: Tag) -> list[tuple[str, int]]:
        found: list[tuple[list[str], int]] = []
        has_header = False
        for tr in table.find_all("tr"):
            if tr.find_parent("table") is not table:
                continue  # a nested table's rows belong to its own cell
            cells = [c for c in tr.find_all(["th", "td"]) if c.find_parent("tr") is tr]
            if not found and cells and all(c.name == "th" for c in cells):
                has_header = True
            found.append(([_clean(c.get_text(" ")) for c in cells], tr.sourceline or 1))
        pieces, lines = _table_pieces(found, has_header)
        return list(zip(pieces, lines, strict=True))

    def definitions(dl: Tag) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for child in dl.find_all(["dt", "dd"], recursive=False):
            body = flat(child)
            if child.name == "dt" or not out:
                out.append((body, child.sourceline or 1))
            else:
                text, line = out[-1]
                out[-1] = (f"{text}\n{body}" if text else body, line)
        return out

    def flush() -> Iterator[Block]:
        nonlocal pending
        body = _clean(" ".join(pending))
        pending = []
        if body:
            yield Block(PROSE, (body,), pending_line or 1, pending_line or 1, path())

    def walk(node: Tag) -> Iterator[Block]:
        nonlocal heading, pending_line
        for child in node.children:
            if isinstance(child, NavigableString):
                if child.__class__ is NavigableString and child.strip():
                    if not pending:
                        pending_line = getattr(child.parent, "sourceline", None) or pending_line
                    pending.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _SKIP:
                continue
            name = child.name
            found: Block | None = None
            if name in _HEADINGS:
                yield from flush()
                level = int(name[1])
                heading = [(lv, t) for lv, t in heading if lv < level] + [(level, flat(child))]
                continue
            if name == "pre":
                code = child.get_text().split("\n")
                first = (child.sourceline or 1) + (1 if code and not code[0].strip() else 0)
                code = "\n".join(code).strip("\n").split("\n")
                found = block(CODE, child, ((line, first + n) for n, line in enumerate(code)))
            elif name in ("ul", "ol"):
                items = child.find_all("li", recursive=False)
                found = block(LIST, child, ((flat(li), li.sourceline or 1) for li in items))
            elif name == "table":
                found = block(TABLE, child, rows(child))
            elif name == "dl":
                found = block(DEFINITIONS, child, definitions(child))
            elif name in _PROSE_TAGS:
                found = block(PROSE, child, ((flat(child), child.sourceline or 1),))
            elif name in ("a", "span", "em", "strong", "code", "b", "i", "tt", "acronym", "abbr", "sub", "sup"):
                if child.get_text().strip():
                    if not pending:
                        pending_line = child.sourceline or pending_line
                    pending.append(child.get_text(" "))
                continue
            else:  # div, section, article, main, ...: their blocks, in order
                yield from flush()
                yield from walk(child)
                continue
            yield from flush()
            if found is not None:
                yield found

    yield from walk(root)
    yield from flush()
