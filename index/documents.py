"""Read the corpus folder into normalised documents.

A bad file must never stop a build of hundreds of good ones, so unreadable or empty files are
reported back to the caller as `Skipped` entries instead of raising.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".txt", ".md")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
MIN_DEDUP_CHARS = 30


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus folder's parent, e.g. "seeds/000.txt"
    text: str  # normalised text; chunk spans index into this
    line_map: tuple[int, ...]  # original 1-based line number of each line of `text`
    sha256: str  # hash of the raw bytes, used for incremental updates


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


def iter_files(corpus_dir: Path) -> Iterable[Path]:
    for path in sorted(corpus_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUFFIXES and not path.name.startswith("."):
            yield path


def source_name(path: Path, corpus_dir: Path) -> str:
    """The name shown in citations: corpus folder name plus the relative path (`seeds/a.txt`)."""
    return (Path(corpus_dir.resolve().name) / path.resolve().relative_to(corpus_dir.resolve())).as_posix()


def read_document(path: Path, corpus_dir: Path) -> Document | Skipped:
    source = source_name(path, corpus_dir)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Skipped(source, f"unreadable: {exc.strerror or exc}")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Skipped(source, "not UTF-8 text")
    text, line_map = normalise(decoded)
    if not text:
        return Skipped(source, "empty")
    return Document(source, text, tuple(line_map), hashlib.sha256(raw).hexdigest())


def load_corpus(corpus_dir: Path) -> tuple[list[Document], list[Skipped]]:
    docs: list[Document] = []
    skipped: list[Skipped] = []
    for path in iter_files(corpus_dir):
        result = read_document(path, corpus_dir)
        (docs if isinstance(result, Document) else skipped).append(result)  # type: ignore[arg-type]
    return docs, skipped
