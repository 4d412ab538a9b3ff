"""reStructuredText (Sphinx style) read as sections and blocks (index/rst_blocks.py) with exact lines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from index.chunking import chunk_document
from index.documents import Document, read_document
from index.structure import CODE, DEFINITIONS, LIST, PROSE, TABLE, Block, read_blocks

PAGE = (Path(__file__).parent / "sphinx_page.rst").read_text()
LINES = PAGE.split("\n")

BASIC = """\
=====
Guide
=====

Intro paragraph with :ref:`the text <target>` and
a second line.

Install
-------

.. _label:

Unpack it.

::

   ./configure
   make

* first item
  goes on
* second item

1. one
2. two

term
   what the term means
   over two lines

:field: value of field
:other: other value

-X utf8        enable UTF-8 mode
-v, --verbose  be verbose

.. note::

   A note body.

+------+------+
| a    | b    |
+======+======+
| 1    | 2    |
+------+------+

=====  =====
col1   col2
=====  =====
x      y
z      w
=====  =====

Deeper
~~~~~~

Last paragraph.
"""


def spans(blocks: list[Block]) -> list[tuple[str, tuple[str, ...], int, int]]:
    return [(b.kind, b.heading, b.start_line, b.end_line) for b in blocks]


def test_docutils_nodes_become_blocks_with_their_heading_path_and_exact_lines() -> None:
    blocks = read_blocks(".rst", BASIC)
    guide, install, deeper = ("Guide",), ("Guide", "Install"), ("Guide", "Install", "Deeper")
    assert spans(blocks) == [
        (PROSE, guide, 5, 6),
        (PROSE, install, 13, 13),  # not the `::` line after it
        (CODE, install, 17, 18),
        (LIST, install, 20, 22),
        (LIST, install, 24, 25),
        (DEFINITIONS, install, 27, 29),
        (DEFINITIONS, install, 31, 32),
        (DEFINITIONS, install, 34, 35),
        (PROSE, install, 37, 39),
        (TABLE, install, 41, 45),
        (TABLE, install, 47, 52),
        (PROSE, deeper, 57, 57),
    ]
    assert blocks[0].pieces == ("Intro paragraph with the text and a second line.",)
    assert blocks[2].pieces == ("./configure", "make") and blocks[2].piece_lines == (17, 18)
    assert blocks[3].pieces == ("first item goes on", "second item") and blocks[3].piece_lines == (20, 22)
    assert blocks[5].pieces == ("term\nwhat the term means over two lines",)
    assert blocks[6].pieces == ("field\nvalue of field", "other\nother value")
    assert blocks[7].pieces == ("-X utf8\nenable UTF-8 mode", "-v, --verbose\nbe verbose")
    assert blocks[7].piece_lines == (34, 35)
    assert blocks[8].pieces == ("Note: A note body.",)
    assert blocks[9].pieces == ("a: 1 | b: 2",) and blocks[9].piece_lines == (44,)
    assert blocks[10].pieces == ("col1: x | col2: y", "col1: z | col2: w")
    assert blocks[10].piece_lines == (50, 51)
    assert blocks[1].anchor == "install" and blocks[11].anchor == "deeper"


def test_sphinx_directives_and_roles_are_read_not_dropped() -> None:
    blocks = read_blocks(".rst", PAGE)
    by_line = {b.start_line: b for b in blocks}
    assert by_line[11].pieces == ("The frob tool converts widgets into gadgets. See the tutorial and convert.",)
    assert by_line[11].heading == ("Command line tool",) and by_line[11].end_line == 12
    options = ("Command line tool", "Options")
    x, v = by_line[23], by_line[27]
    assert (x.kind, x.heading, x.end_line, x.pieces) == (
        DEFINITIONS,
        options,
        25,
        ("-X utf8\nEnable the UTF-8 mode. See FROBUTF8.",),
    )
    assert (v.end_line, v.pieces) == (29, ("-v, --verbose\nPrint more.",))
    assert by_line[31].pieces == ("New in version 2.1",)  # nested in the option, a block of its own
    assert by_line[33].pieces == ("-q\nquiet mode", "--jobs=N\nrun N jobs at once")
    assert by_line[36].pieces == ("FROBHOME\nWhere frob keeps its state.",) and by_line[36].end_line == 38
    code = by_line[43]
    assert code.kind == CODE and code.heading == (*options, "Examples")
    assert code.pieces == ("import frob", 'frob.convert("a")') and code.piece_lines == (46, 47) and code.end_line == 47
    assert by_line[49].pieces == ("Deprecated since version 3.0: Use convert2 instead.",) and by_line[49].end_line == 50
    table = by_line[52]
    assert table.kind == TABLE and table.end_line == 60 and table.piece_lines == (57, 59)
    assert table.pieces == ("Formats: Name: widget | Extension: .wdg", "Name: gadget | Extension: .gdg")
    csv = by_line[62]
    assert csv.pieces == ("Flag: -a | Meaning: all", "Flag: -b | Meaning: brief") and csv.piece_lines == (65, 66)
    assert by_line[68].pieces == ("See also: frob.api, the api page.",)
    function = by_line[70]
    assert function.kind == DEFINITIONS and function.end_line == 75
    assert function.pieces == (
        "convert(source, *, strict=False)\nConvert source. param source: the widget returns: a gadget",
    )
    assert by_line[77].kind == CODE and by_line[77].piece_lines == (79, 80) and by_line[77].end_line == 80
    assert by_line[84].pieces == ("some arg\nBody of an unknown directive.",)
    text = "\n".join(b.text for b in blocks)
    # toctree, index, highlight, program: nothing; include and raw: never read, never shown
    for absent in ("maxdepth", "intro", "single: frob", "passwd", "<b>", "raw", "highlight"):
        assert absent not in text, absent
    assert sorted(by_line) == [b.start_line for b in blocks]


def test_every_block_starts_and_ends_on_its_own_non_blank_lines() -> None:
    for text in (BASIC, PAGE):
        lines = text.split("\n")
        previous_end = 0
        for block in read_blocks(".rst", text):
            assert previous_end < block.start_line <= block.end_line, block
            assert lines[block.start_line - 1].strip() and lines[block.end_line - 1].strip(), block
            for n, piece in enumerate(block.pieces):
                assert block.start_line <= block.line_of_piece(n) <= block.end_line
                word = piece.split()[0].strip(":")
                if block.kind in (CODE, LIST):
                    assert word in lines[block.line_of_piece(n) - 1], (block, piece)
            previous_end = block.end_line


def test_docutils_stays_quiet_and_reads_no_file(capsys: pytest.CaptureFixture[str]) -> None:
    broken = "Title\n=====\n\n+---+\n| a |\n+--\n\n.. include:: /etc/hostname\n\n:unknown:`x` and `unclosed\n"
    blocks = read_blocks(".rst", broken)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert blocks and all(b.heading == ("Title",) for b in blocks)
    assert "| a |" in "\n".join(b.text for b in blocks)  # a malformed table is kept as text


def test_a_chunk_of_an_rst_file_cites_its_lines(tmp_path: Path) -> None:
    (tmp_path / "cli.rst").write_text(PAGE)
    doc = read_document(tmp_path / "cli.rst", tmp_path)
    assert isinstance(doc, Document) and doc.blocks
    chunks = chunk_document(doc, chunk_tokens=80, overlap_tokens=0)
    assert chunks[0].heading == "Command line tool" and (chunks[0].start_line, chunks[0].end_line) == (11, 12)
    option = next(c for c in chunks if "Enable the UTF-8 mode" in c.text)
    assert option.heading == "Command line tool › Options" and option.start_line == 23
    assert LINES[option.start_line - 1] == ".. option:: -X utf8"
    code = next(c for c in chunks if "import frob" in c.text)
    assert LINES[code.start_line - 1].startswith(".. code-block::") or "import frob" in LINES[code.start_line - 1]
    assert code.end_line >= 47
    for chunk in chunks:
        assert LINES[chunk.start_line - 1].strip() and LINES[chunk.end_line - 1].strip()


def test_rst_docutils_cannot_read_is_read_as_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import index.rst_blocks

    def fail(text: str) -> list[Block]:
        raise RecursionError("too deep")

    monkeypatch.setattr(index.rst_blocks, "rst_blocks", fail)
    (tmp_path / "a.rst").write_text("Title\n=====\n\nOne. Two.\n")
    doc = read_document(tmp_path / "a.rst", tmp_path)
    assert isinstance(doc, Document) and not doc.blocks and doc.text.startswith("Title")


def test_an_rst_file_of_only_a_toctree_is_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "index.rst").write_text(".. toctree::\n\n   intro\n   usage\n")
    doc = read_document(tmp_path / "index.rst", tmp_path)
    assert isinstance(doc, Document) and not doc.blocks and "intro" in doc.text
    assert sys.modules["docutils"]  # it was read by docutils first
