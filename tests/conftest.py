"""Unit tests never touch a real LLM: the LLM and embedder are fakes, and litellm is made to refuse
any call that slips through. The only real weights loaded are the embedding model's, by the tests
marked `slow` (tests/index/test_embedder.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from service.api.app import create_app
from service.settings import Settings
from service.testing import FakeLLM, build_fake_index, fake_loader, fake_settings

ROOT = Path(__file__).resolve().parent.parent


# A follow-up question with the conversation it follows.
FOLLOW_UP = {
    "question": "And what did Putin get in return?",
    "history": [
        {"role": "user", "content": "What gifts did Kim receive from Putin?"},
        {"role": "assistant", "content": "A limousine [1]."},
    ],
}


@pytest.fixture(autouse=True)
def _no_real_llm_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    async def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("unit tests must not call a real LLM through litellm")

    if not os.environ.get("CITEQA_ALLOW_LITELLM"):
        monkeypatch.setattr(litellm, "acompletion", forbidden)


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny index over the seed articles, built once per session with the hashing embedder."""
    tmp = tmp_path_factory.mktemp("shared")
    build_fake_index(fake_settings(tmp))
    return tmp / "index"


@pytest.fixture
def settings(index_dir: Path) -> Settings:
    return fake_settings(index_dir.parent)


@pytest.fixture
def fake_llm() -> FakeLLM:
    return FakeLLM()


def make_client(settings: Settings, llm: FakeLLM | None = None) -> TestClient:
    return TestClient(create_app(settings, loader=fake_loader(llm or FakeLLM())), raise_server_exceptions=False)


@pytest.fixture
def client(settings: Settings, fake_llm: FakeLLM) -> Iterator[TestClient]:
    with make_client(settings, fake_llm) as c:
        wait_ready(c)
        yield c


def wait_ready(c: TestClient, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.get("/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"app not ready: {c.get('/ready').json()}")
