"""/ask over a corpus of real PDF and DOCX files: a PDF fact is cited by its page, a DOCX one by
its heading path (the fake LLM and hashing embedder, so no model is needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.testing import build_fake_index, fake_settings
from tests.binary_files import FACT_PAGE, QUESTION, make_office_corpus
from tests.conftest import make_client, wait_ready


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("office-api")
    settings = fake_settings(tmp, corpus_dir=make_office_corpus(tmp / "office"))
    build_fake_index(settings)
    with make_client(settings) as c:
        wait_ready(c)
        yield c


def test_a_pdf_fact_is_cited_by_its_page(client: TestClient) -> None:
    body = client.post("/ask", json={"question": QUESTION}).json()
    assert not body["refused"], body
    first = body["citations"][0]
    assert first["source"].endswith("manual.pdf")
    assert "Marmalade Quasar" in first["text"]
    assert first["page"] == FACT_PAGE
    assert first["anchor"] == f"page={FACT_PAGE}"


def test_a_docx_fact_is_cited_by_its_heading_path(client: TestClient) -> None:
    body = client.post("/ask", json={"question": "How many days of paid leave does a harbour clerk get?"}).json()
    assert not body["refused"], body
    first = body["citations"][0]
    assert first["source"].endswith("handbook.docx")
    assert first["heading"] == "Staff handbook › Holidays"
    assert first["page"] is None
    assert "thirty-one days" in first["text"]
