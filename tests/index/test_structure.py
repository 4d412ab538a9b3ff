"""Markdown and HTML read as sections and blocks (index/structure.py), and chunked along them."""

from __future__ import annotations

from pathlib import Path

from index.chunking import chunk_document
from index.documents import Document, read_document
from index.structure import CODE, DEFINITIONS, LIST, PROSE, TABLE, read_blocks
from index.tokens import count_tokens

MARKDOWN = """# Install

Download the package. Unpack it.

## From source

Run these commands:

```sh
./configure --prefix=/opt/x
make
make install
```

- `--prefix` sets where it goes
- `--jobs` sets how many compile steps run at once

| option | default |
|---|---|
| jobs | 4 |
| prefix | /usr/local |

# Use

Start it with `x serve`.
"""

HTML = """<!DOCTYPE html>
<html><head><title>createdb</title><style>p { color: red }</style></head>
<body>
<div class="navheader"><table summary="Navigation header"><tr>
<td><a href="a.html">Prev</a></td><td><a href="b.html">Up</a></td><td><a href="c.html">Next</a></td>
</tr></table></div>
<nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<div class="sect1" id="CREATEDB">
<h2>createdb</h2>
<p>createdb creates a new
database.</p>
<div class="sect2" id="OPTIONS">
<h3>Options</h3>
<dl>
<dt><code>-O owner</code></dt>
<dd><p>Specifies the database user who will own the new database.</p></dd>
<dt id="opt-t"><code>-T template</code></dt>
<dd><p>Specifies the template database from which to build this database.</p></dd>
</dl>
<pre class="screen">$ createdb -T template0 demo
$ createdb demo</pre>
<table><tr><th>Name</th><th>Storage Size</th></tr>
<tr><td>smallint</td><td>2 bytes</td></tr>
<tr><td>bigint</td><td>8 bytes</td></tr></table>
</div>
</div>
<script>var x = "not text";</script>
</body></html>
"""


def test_markdown_blocks_keep_their_kind_heading_path_and_lines() -> None:
    blocks = read_blocks(".md", MARKDOWN)
    kinds = [(b.kind, b.heading) for b in blocks]
    assert kinds == [
        (PROSE, ("Install",)),
        (PROSE, ("Install", "From source")),
        (CODE, ("Install", "From source")),
        (LIST, ("Install", "From source")),
        (TABLE, ("Install", "From source")),
        (PROSE, ("Use",)),
    ]
    code = blocks[2]
    assert "make install" in code.text and (code.start_line, code.end_line) == (9, 13)
    assert [p.split("`")[1] for p in blocks[3].pieces] == ["--prefix", "--jobs"]
    # Rows under a header say what each value is, so a row read alone still makes sense.
    assert blocks[4].pieces == ("option: jobs | default: 4", "option: prefix | default: /usr/local")
    assert MARKDOWN.splitlines()[blocks[4].line_of_piece(1) - 1] == "| prefix | /usr/local |"
    assert MARKDOWN.splitlines()[blocks[5].start_line - 1] == "Start it with `x serve`."


def test_html_blocks_drop_navigation_scripts_and_styles() -> None:
    blocks = read_blocks(".html", HTML)
    text = "\n".join(b.text for b in blocks)
    assert "Prev" not in text and "Home" not in text and "not text" not in text and "color" not in text
    assert [b.kind for b in blocks] == [PROSE, DEFINITIONS, CODE, TABLE]
    assert blocks[0].text == "createdb creates a new database."
    assert blocks[0].heading == ("createdb",) and blocks[0].anchor == "CREATEDB"
    assert blocks[1].heading == ("createdb", "Options") and blocks[1].anchor == "OPTIONS"


def test_html_items_keep_their_source_lines() -> None:
    lines = HTML.splitlines()
    blocks = read_blocks(".html", HTML)
    definitions, code, table = blocks[1], blocks[2], blocks[3]
    assert definitions.pieces[1].startswith("-T template\nSpecifies the template")
    assert "-T template" in lines[definitions.line_of_piece(1) - 1]
    assert code.pieces == ("$ createdb -T template0 demo", "$ createdb demo")
    assert "$ createdb demo" in lines[code.line_of_piece(1) - 1]
    assert table.pieces == ("Name: smallint | Storage Size: 2 bytes", "Name: bigint | Storage Size: 8 bytes")
    assert "bigint" in lines[table.line_of_piece(1) - 1]


def test_chunks_follow_sections_and_keep_small_blocks_whole(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(MARKDOWN)
    doc = read_document(tmp_path / "guide.md", tmp_path)
    assert isinstance(doc, Document)
    chunks = chunk_document(doc, chunk_tokens=200, overlap_tokens=0)
    assert [c.heading for c in chunks] == ["Install", "Install › From source", "Use"]
    source = chunks[1]
    units = [source.text[s.start : s.end] for s in source.sentences]
    assert any(u.startswith("```sh") and u.endswith("```") and "make install" in u for u in units)
    assert any("--prefix" in u and "--jobs" in u for u in units)  # the list is one unit
    assert (source.start_line, source.end_line) == (7, 21)
    assert chunks[2].embed_text == "Use\nStart it with `x serve`."


def test_a_block_too_big_for_a_chunk_is_split_between_items_only(tmp_path: Path) -> None:
    items = [f"- option --flag-{n} turns feature number {n} on for every request it serves" for n in range(40)]
    (tmp_path / "flags.md").write_text("# Flags\n\n" + "\n".join(items) + "\n")
    doc = read_document(tmp_path / "flags.md", tmp_path)
    assert isinstance(doc, Document)
    chunks = chunk_document(doc, chunk_tokens=64, overlap_tokens=0)
    assert len(chunks) > 1
    for chunk in chunks:
        assert count_tokens(chunk.text) <= 64
        for line in chunk.text.split("\n"):
            assert line in items, line  # no item cut in two
        first = chunk.text.split("\n")[0]
        assert doc_line(tmp_path / "flags.md", chunk.start_line) == first


def doc_line(path: Path, number: int) -> str:
    return path.read_text().splitlines()[number - 1]


def test_plain_text_is_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("# Not a heading\n\nOne. Two.\n")
    doc = read_document(tmp_path / "a.txt", tmp_path)
    assert isinstance(doc, Document)
    assert not doc.blocks and doc.text.startswith("# Not a heading")
    assert all(c.heading == "" for c in chunk_document(doc, 160, 32))


def test_sections_of_an_html_page_sit_under_its_title() -> None:
    """On a reference page the sections are "Options" and "Notes": only the title says of what."""
    page = "<html><head><title>pg_dump</title></head><body><h2>Options</h2><p>-a dumps only data.</p></body></html>"
    assert read_blocks(".html", page)[0].heading == ("pg_dump", "Options")
    same = "<html><head><title>Joins</title></head><body><h1>Joins</h1><p>A join combines rows.</p></body></html>"
    assert read_blocks(".html", same)[0].heading == ("Joins",)
