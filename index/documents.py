"""Read the corpus folder into normalised documents.

A bad file must never stop a build of hundreds of good ones, so unreadable, binary or empty files
are reported back to the caller as `Skipped` entries instead of raising.

Symbolic links are resolved: one whose target lies outside the corpus folder is not followed (it
would publish `/etc/passwd` through citations), and a file reached twice, through a link or a
linked folder, is read once under the source name of its real path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from index.binary_documents import BINARY_SUFFIXES, NotIndexable, is_binary_document, read_binary_blocks
from index.structure import Block, is_structured, read_blocks

log = logging.getLogger("citeqa.index")

# Markdown, HTML and reStructuredText are parsed into blocks (structure.py, rst_blocks.py); PDF and
# Word files by binary_documents.py; .txt is plain text.
SUFFIXES = (".txt", ".rst", ".md", ".markdown", ".html", ".htm", *BINARY_SUFFIXES)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
MIN_DEDUP_CHARS = 30
# Control characters other than the usual whitespace; text files have next to none.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
MAX_CONTROL_SHARE = 0.05


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus folder's parent, e.g. "seeds/000.txt"
    text: str  # normalised text; chunk spans index into this
    line_map: tuple[int, ...]  # original 1-based line number of each line of `text`
    sha256: str  # hash of the raw bytes, used for incremental updates
    # Markdown, HTML, RST, PDF and DOCX only (structure.py): the blocks, and where each starts in `text`.
    blocks: tuple[Block, ...] = ()
    block_starts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


def normalise(raw: str) -> tuple[str, list[int]]:
    """Trim lines, collapse blank runs and spaces, and drop exact-duplicate paragraphs.

    Some scraped articles repeat every paragraph; duplicates waste prompt tokens and double-count
    in retrieval. A paragraph is a run of non-blank lines; very short ones (headings, rules) are
    kept even when repeated. Returns the text and, for each of its lines, the 1-based line number
    in the original file, so citations point at lines the user can open.
    """
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(lines, start=1):
        clean = _SPACES.sub(" ", line).strip()
        if clean:
            blocks[-1].append((number, clean))
        elif blocks[-1]:
            blocks.append([])
    seen: set[str] = set()
    out_lines: list[str] = []
    line_map: list[int] = []
    for block in blocks:
        if not block:
            continue
        key = " ".join(text for _, text in block).casefold()
        if len(key) >= MIN_DEDUP_CHARS and key in seen:
            continue
        seen.add(key)
        if out_lines:
            out_lines.append("")
            line_map.append(block[0][0] - 1)
        for number, text in block:
            out_lines.append(text)
            line_map.append(number)
    return "\n".join(out_lines), line_map


def _is_text_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in SUFFIXES


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _display(path: str, root: Path) -> str:
    """Source-style name of a path found while walking `root` (links not resolved)."""
    return (Path(root.name) / os.path.relpath(path, root)).as_posix()


def scan_corpus(corpus_dir: Path) -> tuple[list[Path], list[Skipped]]:
    """The real paths of the corpus's text files, each once and sorted, and what was passed over.

    Links are never followed out of the corpus folder; a linked folder inside it is not walked
    again (its files are reached through their real paths); a link to a file inside it counts as
    that file. Only regular files are read, so a FIFO named `x.txt` cannot hang the build.
    """
    root = Path(os.path.realpath(corpus_dir))
    found: set[Path] = set()
    skipped: list[Skipped] = []

    def unreadable_dir(exc: OSError) -> None:
        name = _display(exc.filename, root) if exc.filename else root.name
        skipped.append(Skipped(name, f"unreadable folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_dir, followlinks=False):
        dirnames.sort()
        for name, listed_as_file in [*((d, False) for d in dirnames), *((f, True) for f in sorted(filenames))]:
            path = os.path.join(dirpath, name)
            try:
                if not os.path.islink(path):
                    if listed_as_file and _is_text_name(name) and stat.S_ISREG(os.stat(path).st_mode):
                        found.add(Path(path))
                    continue
                target = Path(os.path.realpath(path))
                try:
                    mode: int | None = os.stat(path).st_mode
                    broken = ""
                except OSError as exc:  # a dangling link, or a loop of links
                    mode, broken = None, exc.strerror or str(exc)
                if not (_is_text_name(name) or (mode is not None and stat.S_ISDIR(mode))):
                    continue
                if not _inside(target, root):
                    reason = f"symbolic link to {target}, outside the corpus folder: not followed"
                    skipped.append(Skipped(_display(path, root), reason))
                elif mode is None:
                    skipped.append(Skipped(_display(path, root), f"broken symbolic link: {broken}"))
                elif stat.S_ISREG(mode):
                    found.add(target)
                # A linked folder inside the corpus is not walked again: os.walk does not enter it,
                # and its files are reached through their real paths.
            except (OSError, ValueError) as exc:
                skipped.append(Skipped(_display(path, root), f"cannot be read: {exc}"))
    return sorted(found), skipped


def iter_files(corpus_dir: Path) -> Iterable[Path]:
    """The real paths of the corpus's text files (see `scan_corpus`)."""
    return iter(scan_corpus(corpus_dir)[0])


def source_name(path: Path, corpus_dir: Path) -> str:
    """The name shown in citations: corpus folder name plus the relative path (`seeds/a.txt`).

    `path` must resolve to a file inside the corpus folder (as `scan_corpus` returns), else this
    raises ValueError."""
    root = corpus_dir.resolve()
    return (Path(root.name) / path.resolve().relative_to(root)).as_posix()


def control_share(text: str) -> float:
    """The share of control characters other than whitespace and ESC: next to none in text."""
    return len(_CONTROL.findall(text)) / len(text) if text else 0.0


def read_document(path: Path, corpus_dir: Path) -> Document | Skipped:
    source = source_name(path, corpus_dir)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Skipped(source, f"unreadable: {exc.strerror or exc}")
    if is_binary_document(path.suffix):
        try:
            blocks = read_binary_blocks(path.suffix, raw)
        except NotIndexable as exc:
            return Skipped(source, str(exc))
        if not blocks:
            return Skipped(source, "no text")
        text, line_map, starts = join_blocks(blocks)
        digest = hashlib.sha256(raw).hexdigest()
        return Document(source, text, tuple(line_map), digest, tuple(blocks), tuple(starts))
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Skipped(source, "not UTF-8 text")
    if "\x00" in decoded:  # valid UTF-8, but text never holds NUL bytes (10 KB of them made 63 chunks)
        return Skipped(source, "binary file (contains NUL bytes)")
    if (share := control_share(decoded)) > MAX_CONTROL_SHARE:
        return Skipped(source, f"binary file ({share:.0%} control characters)")
    digest = hashlib.sha256(raw).hexdigest()
    if is_structured(path.suffix):
        rst = path.suffix.lower() == ".rst"
        try:
            blocks = read_blocks(path.suffix, decoded)
        except Exception as exc:  # only docutils raises here; such a file is read as plain text
            if not rst:
                raise
            log.info(
                "%s: not readable as reStructuredText (%s: %s), read as plain text", source, type(exc).__name__, exc
            )
            blocks = []
        if blocks:
            text, line_map, starts = join_blocks(blocks)
            return Document(source, text, tuple(line_map), digest, tuple(blocks), tuple(starts))
        if not rst:
            return Skipped(source, "no text")
    text, line_map = normalise(decoded)
    if not text:
        return Skipped(source, "empty")
    return Document(source, text, tuple(line_map), digest)


def join_blocks(blocks: list[Block]) -> tuple[str, list[int], list[int]]:
    """The document text of a structured file: its blocks, a blank line apart. Each line of a block
    maps to a line of the source inside the block's span (exact for code and Markdown, the block's
    first line for HTML prose, whose lines the parser joins)."""
    parts: list[str] = []
    line_map: list[int] = []
    starts: list[int] = []
    offset = 0
    for block in blocks:
        if parts:
            parts.append("\n\n")
            line_map.append(block.start_line)  # the blank line between blocks
            offset += 2
        starts.append(offset)
        text = block.text
        parts.append(text)
        offset += len(text)
        for index, piece in enumerate(block.pieces):
            line_map.extend(block.line_of_piece(index, k) for k in range(piece.count("\n") + 1))
    return "".join(parts), line_map, starts


def load_corpus(corpus_dir: Path) -> tuple[list[Document], list[Skipped]]:
    files, skipped = scan_corpus(corpus_dir)
    docs: list[Document] = []
    for path in files:
        try:
            result = read_document(path, corpus_dir)
        except Exception as exc:  # one bad file never stops the build
            result = Skipped(
                _display(str(path), Path(os.path.realpath(corpus_dir))),
                f"cannot be indexed ({type(exc).__name__}: {exc})",
            )
        if isinstance(result, Document):
            docs.append(result)
        else:
            skipped.append(result)
    for entry in skipped:
        log.info("skipped %s: %s", entry.source, entry.reason)
    return docs, skipped
