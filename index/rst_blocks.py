"""Read reStructuredText (Sphinx documentation, mostly) into blocks, with docutils.

The doctree gives the structure: sections (their titles make the heading path), paragraphs,
literal and code blocks, lists, tables, definition, field and option lists, admonitions. Sphinx
adds directives and roles docutils does not know (`.. code-block::`, `.. option::`,
`.. versionadded::`, `:ref:`, `:func:` ...); they are given permissive handlers here, so that a
Sphinx page neither fails to parse nor loses text: a role shows its text (`:ref:\\`text <target>\\``
is "text"), a description directive (`.. option:: -v`, `.. function:: f(x)`) becomes a definition
whose term is its signature, `.. code-block::` is code, and `.. toctree::`, `.. index::` and
`.. highlight::` produce nothing. A directive neither docutils nor this module knows is read as its
arguments and its content.

docutils never reports to stderr, never reads an `.. include::` file and never passes `.. raw::`
through (the settings below).

Line spans. docutils gives most nodes a `.line`, not all, and not always the first line (a section's
is its title's underline). So a block's first line is the `.line` of the node or of its first
descendant that has one, checked against the source (a paragraph's first raw line, a code block's
first line) and searched for nearby when it is off; and a block ends on the last non-blank source
line before whatever starts next (the next block, section title, comment, target or directive that
yields nothing), so each block's span covers exactly its own lines.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, Parser, directives, roles

from index.structure import CODE, DEFINITIONS, LIST, PROSE, TABLE, Block, _table_pieces

_SPACES = re.compile(r"\s+")
# Line breaks other than \n that str.splitlines (and so docutils) honours: made spaces, so that
# docutils' line numbers are the file's lines as an editor counts them.
_OTHER_BREAKS = str.maketrans({c: " " for c in "\v\f\x1c\x1d\x1e\x85\u2028\u2029"})
_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")
_TARGET = re.compile(r"^(.*?)\s*<[^<>]*>$", re.DOTALL)


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


# --- Sphinx's directives and roles, permissively ----------------------------------------------------


class _AnyOptions(dict):
    """An option_spec that takes any option as a string (`:linenos:`, `:caption:`, `:noindex:`)."""

    def __missing__(self, key: str) -> Callable[[Any], Any]:
        return directives.unchanged


def _options() -> dict:
    return _AnyOptions(name=directives.unchanged)  # not empty: docutils tests it for truth


class _Nothing(Directive):
    """toctree, index, highlight ...: nothing to read. A comment keeps its line, as a boundary."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _options()

    def run(self) -> list[nodes.Node]:
        marker = nodes.comment()
        marker.line = self.lineno
        return [marker]


class _Code(Directive):
    """code-block, sourcecode, code: the content, line for line."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _options()

    def run(self) -> list[nodes.Node]:
        code = nodes.literal_block("\n".join(self.content), "\n".join(self.content))
        code.line = self.content_offset + 1
        code["citeqa_start"] = self.lineno
        return [code]


class _Description(Directive):
    """option, function, class, envvar, describe ...: the signature as a term, the content as its
    definition."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _options()

    def run(self) -> list[nodes.Node]:
        signature = self.arguments[0] if self.arguments else self.name
        item = nodes.definition_list_item()
        item += nodes.term(signature, signature)
        definition = nodes.definition()
        self.state.nested_parse(self.content, self.content_offset, definition)
        item += definition
        described = nodes.definition_list("", item, classes=["citeqa-description"])
        described.line = item.line = self.lineno
        return [described]


class _Container(Directive):
    """only, glossary, hlist, tab ... and any directive nobody knows: its arguments and content."""

    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _options()
    label = ""

    def run(self) -> list[nodes.Node]:
        box = nodes.admonition() if self.label else nodes.container()
        if self.label:
            text = self.arguments[0] if self.arguments else ""
            words = text.split(None, 1) if "{}" in self.label else ["", text] if text else []
            box["citeqa_label"] = self.label.format(words[0] if words else "").strip()
            if len(words) > 1:  # `.. versionadded:: 3.2 The text`, `.. seealso:: :func:`f``
                box += self.paragraph(words[1])
        elif self.arguments and self.content:
            return _Description.run(self)  # type: ignore[arg-type]  # an unknown `.. x:: name` with a body
        elif self.arguments:
            box += self.paragraph(self.arguments[0])
        box.line = self.lineno
        self.state.nested_parse(self.content, self.content_offset, box)
        return [box]

    def paragraph(self, text: str) -> nodes.paragraph:
        """Text on the directive's line, its inline markup read."""
        inline, _ = self.state.inline_text(text, self.lineno)
        paragraph = nodes.paragraph(text, "", *inline)
        paragraph.line = self.lineno
        return paragraph


def _labelled(label: str) -> type[Directive]:
    return type("_Labelled", (_Container,), {"label": label})


_NOTHING = (
    "toctree index highlight tabularcolumns currentmodule sectionauthor moduleauthor codeauthor "
    "literalinclude program default-domain testsetup testcleanup autosummary"
)
_CODE = "code-block sourcecode code productionlist doctest testcode testoutput"
_DESCRIPTIONS = (
    "option cmdoption envvar describe object function method class attribute data exception "
    "decorator decoratormethod staticmethod classmethod coroutinefunction coroutinemethod "
    "abstractmethod property type module confval setting"
)
_LABELS = {
    "versionadded": "New in version {}",
    "versionchanged": "Changed in version {}",
    "deprecated": "Deprecated since version {}",
    "versionremoved": "Removed in version {}",
    "seealso": "See also",
    "todo": "To do",
    "impl-detail": "Implementation detail",
}


def _role(name: str, rawtext: str, text: str, lineno: int, inliner: Any, options: Any = None, content: Any = None):
    """Any role: its text, without an explicit `<target>` or a leading ~ or !."""
    shown = nodes.unescape(text)
    if match := _TARGET.match(shown):
        shown = match.group(1) or shown
    if shown.startswith("~"):
        shown = shown[1:].rsplit(".", 1)[-1]
    return [nodes.literal(rawtext, shown.lstrip("!"))], []


_installed = False


def _install() -> None:
    """Register the handlers, once. docutils' lookups are module-level registries; the fallbacks
    only change what happens to names docutils knows nothing of (otherwise an error)."""
    global _installed
    if _installed:
        return
    for name in _NOTHING.split():
        directives.register_directive(name, _Nothing)
    for name in _CODE.split():
        directives.register_directive(name, _Code)
    for name in _DESCRIPTIONS.split():
        directives.register_directive(name, _Description)
    for name, label in _LABELS.items():
        directives.register_directive(name, _labelled(label))
    for name in ("only", "ifconfig", "glossary", "hlist", "centered"):
        directives.register_directive(name, _Container)
    known_directive, known_role = directives.directive, roles.role

    def directive(name: str, language: Any, document: Any) -> tuple[Any, list]:
        found, messages = known_directive(name, language, document)
        return (found, messages) if found is not None else (_Container, [])

    def role(name: str, language: Any, lineno: int, reporter: Any) -> tuple[Any, list]:
        found, messages = known_role(name, language, lineno, reporter)
        return (found, messages) if found is not None else (_role, [])

    directives.directive = directive  # type: ignore[assignment]
    roles.role = role  # type: ignore[assignment]
    _installed = True


def _parse(text: str) -> nodes.document:
    from docutils.frontend import get_default_settings
    from docutils.utils import new_document

    _install()
    parser = Parser()
    settings = get_default_settings(Parser)
    settings.report_level = 5
    settings.halt_level = 5
    settings.warning_stream = io.StringIO()
    settings.file_insertion_enabled = False
    settings.raw_enabled = False
    settings.syntax_highlight = "none"
    settings.line_length_limit = 1_000_000
    document = new_document("<rst>", settings)
    parser.parse(text, document)
    return document


# --- The doctree as blocks ------------------------------------------------------------------------

_SKIPPED: tuple[type, ...] = (nodes.comment, nodes.target, nodes.substitution_definition, nodes.pending, nodes.raw)
_SKIPPED += (nodes.transition, nodes.image)
_PROSE: tuple[type[nodes.Element], ...] = (
    nodes.paragraph,
    nodes.line_block,
    nodes.rubric,
    nodes.caption,
    nodes.legend,
    nodes.title,
)
_PROSE += (nodes.footnote, nodes.citation)
_RECURSED = (nodes.block_quote, nodes.container, nodes.compound, nodes.topic, nodes.sidebar, nodes.figure)


@dataclass
class _Found:
    kind: str
    pieces: list[str]
    piece_lines: list[int]
    start: int
    heading: tuple[str, ...]
    anchor: str
    last: int = 0  # the last line the block is known to reach
    exact: bool = False  # `last` is its last line


@dataclass
class _Reader:
    lines: list[str]
    found: list[_Found] = field(default_factory=list)
    starts: set[int] = field(default_factory=set)  # where anything starts: where a block ends
    heading: tuple[str, ...] = ()
    anchor: str = ""
    cursor: int = 1  # blocks come in source order: none starts before this line

    # where things are ---------------------------------------------------------------------------

    def nonblank_from(self, line: int) -> int:
        while line <= len(self.lines) and not self.lines[line - 1].strip():
            line += 1
        return min(line, len(self.lines))

    def search(self, text: str, guess: int, far: bool = True) -> int:
        """The line near `guess` (not before the cursor) that holds `text`, or if `far` the first
        after the cursor that does; `guess` if none does. A parsed-literal's text is not its source."""
        text = text.strip()
        if not text:
            return guess
        for delta in (0, 1, -1, 2, -2, 3, -3, 4, 5, 6, 7, 8):
            line = guess + delta
            if self.cursor <= line <= len(self.lines) and text in self.lines[line - 1]:
                return line
        for line in range(self.cursor, len(self.lines) + 1 if far else 0):  # anywhere after, then
            if text in self.lines[line - 1]:
                return line
        return guess

    def line_of(self, node: nodes.Node) -> int:
        if isinstance(node, nodes.Element) and "citeqa_start" in node:
            return int(node["citeqa_start"])
        line = _first_line(node) or self.cursor
        if isinstance(node, nodes.paragraph) and node.rawsource:
            line = self.search(node.rawsource.split("\n", 1)[0], line)
        elif isinstance(node, nodes.literal_block | nodes.doctest_block):
            first = next((ln for ln in node.astext().split("\n") if ln.strip()), "")
            line = self.search(first, line, far=False)
        return self.nonblank_from(max(line, 1))

    def title_start(self, title: nodes.title) -> int:
        """A section title's first line: its overline's, if it has one. docutils' `.line` for a
        title is its underline."""
        under = title.line or self.cursor
        text = self.search(title.rawsource.split("\n", 1)[0] or title.astext(), max(under - 1, 1))
        if text >= 2 and _ADORNMENT.match(self.lines[text - 2]):
            return text - 1
        return text

    def add(self, kind: str, node: nodes.Node, pieces: list[tuple[str, int]], start: int | None = None) -> None:
        kept = [(text, line) for text, line in pieces if text.strip()]
        if not kept:
            return
        first = start if start is not None else self.line_of(node)
        lines: list[int] = []
        for _, line in kept:  # in order, within the block
            lines.append(max(line, lines[-1] if lines else first, first))
        self.found.append(_Found(kind, [t for t, _ in kept], lines, first, self.heading, self.anchor, lines[-1]))
        self.starts.add(first)
        self.cursor = max(self.cursor, lines[-1])

    def boundary(self, line: int) -> None:
        self.starts.add(line)
        self.cursor = max(self.cursor, line)

    # what things are --------------------------------------------------------------------------

    def walk(self, parent: nodes.Element) -> None:
        for child in parent.children:
            if isinstance(child, nodes.Element):
                self.visit(child)

    def visit(self, node: nodes.Element) -> None:
        if isinstance(node, nodes.section):
            self.section(node)
        elif isinstance(node, nodes.system_message):
            # An error (a malformed table, say) carries the source it could not read: kept as prose.
            # Warnings are left out: a disabled `.. include::` or `.. raw::`.
            for literal in node.findall(nodes.literal_block) if node.get("level", 0) >= 3 else ():
                first = next((ln for ln in literal.astext().split("\n") if ln.strip()), "")
                self.add(PROSE, literal, [(_clean(literal.astext()), 0)], self.search(first, self.cursor))
        elif isinstance(node, _SKIPPED):
            if line := _first_line(node):
                self.boundary(self.nonblank_from(line))
        elif isinstance(node, nodes.paragraph) and node.rawsource:
            self.add(PROSE, node, [(_clean(node.astext()), 0)])
            # A paragraph's raw source is its lines: its end, even when a `::` line follows it.
            self.found[-1].last = self.found[-1].start + node.rawsource.strip("\n").count("\n")
            self.found[-1].exact = True
        elif isinstance(node, _PROSE):  # a title here is a topic's or sidebar's
            self.add(PROSE, node, [(_clean(node.astext()), 0)])
        elif isinstance(node, nodes.literal_block | nodes.doctest_block | nodes.math_block):
            start = self.line_of(node)
            first = _first_line(node) if "citeqa_start" in node else start
            code = node.astext().split("\n")
            first = self.search(next((ln for ln in code if ln.strip()), ""), first or start, far=False)
            self.add(CODE, node, [(ln, first + n) for n, ln in enumerate(code)], start)
        elif isinstance(node, nodes.bullet_list | nodes.enumerated_list):
            items = [c for c in node.children if isinstance(c, nodes.list_item)]
            self.add(LIST, node, [(_clean(i.astext()), _first_line(i)) for i in items])
        elif isinstance(node, nodes.definition_list):
            self.definitions(node)
        elif isinstance(node, nodes.field_list):
            fields = [c for c in node.children if isinstance(c, nodes.field)]
            self.add(DEFINITIONS, node, [(_field(f), _first_line(f)) for f in fields])
        elif isinstance(node, nodes.option_list):
            options = [c for c in node.children if isinstance(c, nodes.option_list_item)]
            self.add(DEFINITIONS, node, [(_option(o), _first_line(o)) for o in options])
        elif isinstance(node, nodes.table):
            self.table(node)
        elif isinstance(node, nodes.Admonition):
            label = node.get("citeqa_label") or ("" if isinstance(node, nodes.admonition) else node.tagname.title())
            body = _clean(node.astext())
            self.add(PROSE, node, [(f"{label}: {body}" if label and body else label or body, 0)])
        elif isinstance(node, _RECURSED):
            self.boundary(self.line_of(node))
            self.walk(node)
        elif node.children and all(isinstance(c, nodes.Element) for c in node.children):
            self.walk(node)
        elif _clean(node.astext()):
            self.add(PROSE, node, [(_clean(node.astext()), 0)])

    def section(self, node: nodes.section) -> None:
        title = node.next_node(nodes.title)
        outer, outer_anchor = self.heading, self.anchor
        if title is not None and title.parent is node:
            self.boundary(self.title_start(title))
            self.heading = (*outer, _clean(title.astext()))
        ids = node.get("ids") or []
        self.anchor = ids[0] if ids else outer_anchor
        for child in node.children:
            if isinstance(child, nodes.Element) and child is not title:
                self.visit(child)
        self.heading, self.anchor = outer, outer_anchor

    def definitions(self, node: nodes.definition_list) -> None:
        items = [c for c in node.children if isinstance(c, nodes.definition_list_item)]
        if "citeqa-description" not in node["classes"]:
            self.add(DEFINITIONS, node, [(_definition(i), _first_line(i)) for i in items])
            return
        # A description directive: its signature and the paragraphs and lists that follow it, as one
        # definition; code, tables, admonitions and nested descriptions in its body as blocks of their own.
        item = items[0]
        term = "\n".join(_clean(t) for t in item.children[0].astext().split("\n") if t.strip())
        body = item.children[-1] if isinstance(item.children[-1], nodes.definition) else nodes.definition()
        children = [c for c in body.children if isinstance(c, nodes.Element)]
        lead = 0
        while lead < len(children) and isinstance(
            children[lead], nodes.paragraph | nodes.bullet_list | nodes.enumerated_list | nodes.field_list
        ):
            lead += 1
        text = " ".join(_flat(c) for c in children[:lead])
        self.add(DEFINITIONS, node, [(f"{term}\n{text}" if text else term, node.line or self.cursor)], node.line)
        for child in children[:lead]:
            if line := _last_line(child):
                self.found[-1].last = max(self.found[-1].last, line)
        for child in children[lead:]:
            self.visit(child)

    def table(self, node: nodes.table) -> None:
        rows: list[tuple[list[str], int]] = []
        for row in node.findall(nodes.row):
            if _nearest(row, nodes.table) is not node:
                continue  # a nested table's rows belong to its own cell
            cells = [_clean(e.astext()) for e in row.children if isinstance(e, nodes.entry)]
            rows.append((cells, _first_line(row)))
        has_header = any(True for _ in node.findall(nodes.thead))
        start = self.line_of(node)
        previous = start - 1
        for n, (cells, line) in enumerate(rows):
            if line <= previous:  # no line (a csv-table's cells), or not after the row before: search
                first = next((c for c in cells if c), "")
                line = next(
                    (
                        k
                        for k in range(previous + 1, min(previous + 50, len(self.lines)) + 1)
                        if first in self.lines[k - 1]
                    ),
                    previous + 1,
                )
                rows[n] = (cells, line)
            previous = line
        pieces, lines = _table_pieces(rows, has_header)
        title = node.next_node(nodes.title)
        if title is not None and title.parent is node and pieces:
            pieces = (f"{_clean(title.astext())}: {pieces[0]}", *pieces[1:])
        self.add(TABLE, node, list(zip(pieces, lines, strict=True)), start)

    # ---------------------------------------------------------------------------------------------

    def blocks(self) -> Iterator[Block]:
        starts = sorted(self.starts)
        for found in self.found:
            if found.exact:
                yield Block(
                    found.kind,
                    tuple(found.pieces),
                    found.start,
                    found.last,
                    found.heading,
                    found.anchor,
                    tuple(found.piece_lines),
                )
                continue
            following = next((s for s in starts if s > found.start and s > found.last), len(self.lines) + 1)
            end = following - 1
            while end > found.start and not self.lines[end - 1].strip():
                end -= 1
            end = max(end, found.last, found.start)
            yield Block(
                found.kind,
                tuple(found.pieces),
                found.start,
                end,
                found.heading,
                found.anchor,
                tuple(found.piece_lines),
            )


def _first_line(node: nodes.Node) -> int:
    """The `.line` of the node or of its first descendant that has one (0 when none has)."""
    for each in node.findall(include_self=True):
        if isinstance(each, nodes.Element) and each.line:
            return int(each.line)
    return 0


def _last_line(node: nodes.Node) -> int:
    return max((int(e.line) for e in node.findall(nodes.Element) if e.line), default=0)


def _nearest(node: nodes.Node, kind: type) -> nodes.Node | None:
    parent = node.parent
    while parent is not None and not isinstance(parent, kind):
        parent = parent.parent
    return parent


def _flat(node: nodes.Element) -> str:
    """A node's text on one line; a field list's fields as "name: body"."""
    if isinstance(node, nodes.field_list):
        return " ".join(_field(f).replace("\n", ": ", 1) for f in node.children if isinstance(f, nodes.field))
    return _clean(node.astext())


def _definition(item: nodes.definition_list_item) -> str:
    terms = " : ".join(_clean(c.astext()) for c in item.children if isinstance(c, nodes.term | nodes.classifier))
    body = " ".join(_clean(c.astext()) for c in item.children if isinstance(c, nodes.definition))
    return f"{terms}\n{body}" if body else terms


def _field(item: nodes.field) -> str:
    name = next((_clean(c.astext()) for c in item.children if isinstance(c, nodes.field_name)), "")
    body = next((_clean(c.astext()) for c in item.children if isinstance(c, nodes.field_body)), "")
    return f"{name}\n{body}" if body else name


def _option(item: nodes.option_list_item) -> str:
    names = [option.astext() for option in item.findall(nodes.option)]  # an argument's text has its delimiter
    body = " ".join(_clean(c.astext()) for c in item.children if isinstance(c, nodes.description))
    return f"{', '.join(names)}\n{body}" if body else ", ".join(names)


def rst_blocks(text: str) -> list[Block]:
    """The blocks of a reStructuredText document, in order. Raises whatever docutils raises on a
    file it cannot read at all; the caller reads such a file as plain text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_OTHER_BREAKS)
    document = _parse(text)
    reader = _Reader(text.split("\n"))
    reader.walk(document)
    return list(reader.blocks())
