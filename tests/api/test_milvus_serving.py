"""`CITEQA_VECTOR_STORE=milvus`: the service answers from a real Milvus Lite collection, and gives
the same answers and citations as from the FAISS index (the engine's BM25 reads the same terms
as the in-process one, and both dense legs are exact)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install '.[milvus]')")

from service.answer.loading import check_index
from service.settings import Settings
from service.testing import fake_settings
from tests.conftest import make_client, wait_ready

QUESTIONS = [
    "What breed of dog did Kim give Putin?",
    "Which automaker manufactured the limousine?",
    "Who is the Russian ambassador to Vietnam?",
    "Who won the 2022 FIFA World Cup?",
]


def _answers(settings: Settings) -> list[tuple[str, bool, list[tuple[str, int, int]]]]:
    with make_client(settings) as c:
        wait_ready(c, timeout=120)
        out = []
        for q in QUESTIONS:
            r = c.post("/ask", json={"question": q})
            assert r.status_code == 200, r.text
            body = r.json()
            out.append(
                (
                    body["answer"],
                    body["refused"],
                    [(x["source"], x["start_line"], x["end_line"]) for x in body["citations"]],
                )
            )
        return out


def test_answers_from_milvus_match_the_faiss_index(tmp_path: Path) -> None:
    milvus = fake_settings(tmp_path / "m", vector_store="milvus", milvus_uri=str(tmp_path / "citeqa.db"))
    faiss = fake_settings(tmp_path / "f")
    from_milvus, from_faiss = _answers(milvus), _answers(faiss)
    assert from_milvus == from_faiss
    assert from_milvus[0][2] and from_milvus[0][2][0][0] == "seeds/000_cfe940b0310ddd85.txt"
    assert from_milvus[-1][1] is True  # the question the seeds cannot answer is refused either way


def test_an_empty_milvus_store_stops_start_up_naming_the_fix(tmp_path: Path) -> None:
    from index.store import IndexLoadError

    settings = fake_settings(tmp_path, vector_store="milvus", milvus_uri=str(tmp_path / "empty.db"))
    with pytest.raises(IndexLoadError, match="citeqa index"):
        check_index(settings)
