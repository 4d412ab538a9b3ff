"""Reproductions for the index builder's safety, driving the real `citeqa index` command line.

Bad files in the corpus (links out of it, binary files) are skipped and reported, never a crash.
Builds of one index folder run one at a time under an flock on `<index>/.lock`: a second build
waits for the first (and says so), or gives up after its timeout naming the lock file; pruning
never deletes the version `CURRENT` names. Most runs swap in the hashing embedder (`_FAST_CLI`:
the same `service.cli.main`, only the model is not loaded); one test runs the real embedder.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from index import store
from index.builder import build
from index.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[2]
SEED = "000_cfe940b0310ddd85.txt"

# `citeqa index` exactly as the console script runs it, with the hashing embedder for speed.
_FAST_CLI = """
import sys
import index.embedder as embedder
embedder.SentenceTransformerEmbedder = lambda name, **kw: embedder.HashingEmbedder()
from service.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(corpus: Path, index_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CITEQA_CORPUS_DIR": str(corpus),
        "CITEQA_INDEX_DIR": str(index_dir),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _fast_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", _FAST_CLI, "index", "--quiet", *args]


def citeqa_index(corpus: Path, index_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _fast_cmd(*args), cwd=ROOT, env=_env(corpus, index_dir), capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", folder)
    return folder


# --- bad files ---------------------------------------------------------------------------------


def test_symlink_out_of_the_corpus_is_skipped_not_a_traceback(corpus: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")  # stands in for /etc/passwd
    (outside / "secret.txt").write_text("The launch code is 0000. Nobody may read this.\n")
    (corpus / "passwd.txt").symlink_to(outside / "passwd")
    (corpus / "ext").symlink_to(outside, target_is_directory=True)
    index_dir = tmp_path / "index"
    proc = citeqa_index(corpus, index_dir)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"skipped seeds/passwd.txt: symbolic link to {outside / 'passwd'}, outside the corpus folder" in proc.stderr
    assert f"skipped seeds/ext: symbolic link to {outside}, outside the corpus folder" in proc.stderr
    data = store.load(index_dir)
    assert sorted(data.manifest.files) == sorted(f"seeds/{p.name}" for p in (ROOT / "seeds").glob("*.txt"))
    assert not any("root:x" in c.text or "launch code" in c.text for c in data.chunks)


def test_file_reached_twice_is_indexed_once_across_incremental_runs(corpus: Path, tmp_path: Path) -> None:
    """A link to a seed and a linked folder used to give two documents with one source name, and
    the seed's chunks doubled on every run that wrote the index."""
    (corpus / "sub").mkdir()
    (corpus / "sub" / "zoo.md").write_text("The Pyongyang zoo keeps penguins. Its bear is called Misha.\n")
    (corpus / "alias.txt").symlink_to(corpus / SEED)
    (corpus / "sub-link").symlink_to("sub", target_is_directory=True)
    index_dir = tmp_path / "index"

    def chunks_per_source() -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in store.load(index_dir).chunks:
            counts[chunk.source] = counts.get(chunk.source, 0) + 1
        return counts

    proc = citeqa_index(corpus, index_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = chunks_per_source()
    assert sorted(first) == sorted([f"seeds/{p.name}" for p in (ROOT / "seeds").glob("*.txt")] + ["seeds/sub/zoo.md"])
    keys = [(c.source, c.char_start) for c in store.load(index_dir).chunks]
    assert len(keys) == len(set(keys)), "a chunk is in the index twice"
    for n in range(2):  # two more runs that write the index (a changed file each time)
        (corpus / "sub" / "zoo.md").write_text(f"The Pyongyang zoo keeps penguins. Update {n}: a new bear.\n")
        proc = citeqa_index(corpus, index_dir)
        assert proc.returncode == 0 and "changed 1" in proc.stderr, proc.stderr[-3000:]
        assert chunks_per_source() == first


def test_nul_only_and_binary_files_are_skipped_as_binary(corpus: Path, tmp_path: Path) -> None:
    (corpus / "zeros.txt").write_bytes(b"\x00" * 10240)  # used to become 63 chunks
    (corpus / "controls.md").write_bytes(bytes(range(1, 9)) * 1000)  # decodes as UTF-8; still not text
    index_dir = tmp_path / "index"
    proc = citeqa_index(corpus, index_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped seeds/zeros.txt: binary file (contains NUL bytes)" in proc.stderr
    assert "skipped seeds/controls.md: binary file" in proc.stderr
    data = store.load(index_dir)
    assert {c.source for c in data.chunks} == set(data.manifest.files)
    assert not {"seeds/zeros.txt", "seeds/controls.md"} & set(data.manifest.files)


# --- one writer at a time ----------------------------------------------------------------------


@contextmanager
def holding_the_lock(index_dir: Path) -> Iterator[Path]:
    """Be "another build": hold the documented lock, an flock on `<index>/.lock`."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / ".lock"
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield path


def _read_lines(stream: Iterable[str] | None, into: list[str]) -> threading.Thread:
    def pump() -> None:
        for line in stream or ():
            into.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_citeqa_index_waits_for_a_build_holding_the_lock(corpus: Path, tmp_path: Path) -> None:
    """The real command, real embedder: while another build holds the lock it waits, says so,
    writes nothing; once the lock is free it builds."""
    index_dir = tmp_path / "index"
    with holding_the_lock(index_dir) as lock:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "index", "--quiet"],
            cwd=ROOT,
            env=_env(corpus, index_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        reader = _read_lines(proc.stderr, lines)
        try:
            _wait_for(
                lambda: proc.poll() is not None or any("waiting for the index lock" in line for line in lines),
                240,
                "the build to wait for the lock",
            )
            assert proc.poll() is None, "built while another build held the lock:\n" + "".join(lines)[-3000:]
            assert any(str(lock) in line for line in lines), "".join(lines)
            time.sleep(1.0)
            assert proc.poll() is None and not (index_dir / store.POINTER).exists()
        except BaseException:
            proc.kill()
            raise
    assert proc.wait(timeout=300) == 0, "".join(lines)[-3000:]
    reader.join(timeout=10)
    assert any("got the index lock" in line for line in lines), "".join(lines)
    data = store.load(index_dir)
    assert data.manifest.embedding_model == "all-MiniLM-L6-v2" and len(data.manifest.files) == 4


@pytest.mark.slow
def test_citeqa_index_exits_2_after_the_configured_lock_timeout(corpus: Path, tmp_path: Path) -> None:
    """CITEQA_INDEX_LOCK_TIMEOUT reaches the build: with another build holding the lock, the
    command gives up after that many seconds, exits 2 and names the lock file."""
    index_dir = tmp_path / "index"
    with holding_the_lock(index_dir) as lock:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "index", "--quiet"],
            cwd=ROOT,
            env={**_env(corpus, index_dir), "CITEQA_INDEX_LOCK_TIMEOUT": "1"},
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 2, done.stderr[-3000:]
    assert str(lock) in done.stderr and "Traceback" not in done.stderr
    assert not (index_dir / store.POINTER).exists()


def test_build_gives_up_after_its_lock_timeout_naming_the_lock_file(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    with holding_the_lock(index_dir) as lock:
        started = time.monotonic()
        with pytest.raises(store.IndexLockedError) as info:
            build(corpus, index_dir, HashingEmbedder(), 160, 32, lock_timeout=0.6)
        waited = time.monotonic() - started
    assert str(lock) in str(info.value) and "citeqa index" in str(info.value)
    assert 0.5 < waited < 5
    assert not (index_dir / store.POINTER).exists()
    assert build(corpus, index_dir, HashingEmbedder(), 160, 32, lock_timeout=0.6).written  # free again


# Build A, paused between switching CURRENT to its version and pruning (the window of the bug).
_PAUSED_BUILD = """
import sys, time
from pathlib import Path
from index import store
from index.builder import build
from index.embedder import HashingEmbedder
corpus, index_dir, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
real_save = store.save
name = "prune" if hasattr(store, "prune") else "_prune"  # the function save() calls last
real_prune = getattr(store, name)
saving = False
def save(*args, **kwargs):
    global saving
    saving = True
    return real_save(*args, **kwargs)
def prune(*args, **kwargs):
    if saving:
        print("paused", store.current_version(index_dir).name, flush=True)
        while not go.exists():
            time.sleep(0.02)
    return real_prune(*args, **kwargs)
store.save = save
setattr(store, name, prune)
build(corpus, index_dir, HashingEmbedder(), 160, 32, force=True)
"""


def test_two_builds_at_once_never_delete_the_current_version(corpus: Path, tmp_path: Path) -> None:
    """Run A pauses after switching CURRENT, before pruning; run B (`citeqa index --rebuild`)
    starts in that window. Before the lock, B built and pruned A's version, then A pruned B's:
    both exited 0 and CURRENT named a missing folder. Now B waits for A, and B's version is current."""
    index_dir = tmp_path / "index"
    assert citeqa_index(corpus, index_dir).returncode == 0
    go = tmp_path / "go"
    env = _env(corpus, index_dir)
    bad: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # CURRENT must name an existing folder at every moment
        while not stop.is_set():
            version = store.current_version(index_dir)
            if version is not None and not version.is_dir() and store.current_version(index_dir) == version:
                bad.append(version.name)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    a = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_BUILD, str(corpus), str(index_dir), str(go)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    b = None
    try:
        assert a.stdout is not None
        first = a.stdout.readline().split()  # blocks until A is in the window
        assert first[:1] == ["paused"], a.stderr.read() if a.stderr else ""
        version_a = first[1]
        assert store.current_version(index_dir) == index_dir / version_a
        b = subprocess.Popen(
            _fast_cmd("--rebuild"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        b_lines: list[str] = []
        reader = _read_lines(b.stderr, b_lines)
        _wait_for(
            lambda: b.poll() is not None or any("waiting for the index lock" in line for line in b_lines),
            60,
            "build B to finish or to wait for the lock",
        )
        go.touch()  # let A prune and exit
        assert a.wait(timeout=60) == 0, a.stderr.read() if a.stderr else ""
        assert b.wait(timeout=60) == 0, "".join(b_lines)[-3000:]
        reader.join(timeout=10)
    finally:
        stop.set()
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
    watcher.join(timeout=5)
    current = store.current_version(index_dir)
    assert current is not None and current.is_dir(), f"CURRENT names missing folder {current}"
    assert current.name != version_a, "B's version is not the current one"
    assert (index_dir / version_a).is_dir(), "the previous version (A's) must stay on disk"
    assert bad == [], f"CURRENT named a missing folder: {bad}"
    store.load(index_dir)
    assert any("waiting for the index lock" in line for line in b_lines), "".join(b_lines)
