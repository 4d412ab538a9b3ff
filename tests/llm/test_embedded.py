"""The embedded model's wrapper, over a fake llama_cpp: prompts trimmed to fit the context,
streaming that stops when asked, and the native model freed at exit."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from service.llm import embedded
from service.llm.embedded import TRIM_MARK, LocalLlama

LOGITS = np.zeros(64, np.float32)  # the fake vocabulary's next-token logits: token 3 likeliest, then 5
LOGITS[3], LOGITS[5] = 4.0, 3.0


class FakeLlama:
    """One token per whitespace-separated word; keeps the last prompt's tokens and reuses the
    longest prefix it shares with the next, as llama.cpp does."""

    instances: ClassVar[list[FakeLlama]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.closed = 0
        self.prompts: list[list[dict[str, str]]] = []
        self.calls: list[dict[str, Any]] = []
        self.input_ids: list[bytes] = []
        self.n_tokens = 0
        self.reused: list[int] = []  # prompt tokens each call did not read again
        self.loads = 0
        FakeLlama.instances.append(self)

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = False) -> list[bytes]:
        return text.split()

    def detokenize(self, tokens: list[Any]) -> bytes:
        return b" ".join(t if isinstance(t, bytes) else f"t{t}".encode() for t in tokens)

    def create_chat_completion(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        self.prompts.append(messages)
        self.calls.append({k: kwargs[k] for k in ("max_tokens", "temperature") if k in kwargs})
        tokens = [t for m in messages for t in [f"<{m['role']}>".encode(), *self.tokenize(m["content"].encode())]]
        reused = 0
        for a, b in zip(self.input_ids[: self.n_tokens], tokens, strict=False):
            if a != b:
                break
            reused += 1
        self.reused.append(reused)
        self.input_ids, self.n_tokens = tokens, len(tokens)
        for look in kwargs.get("logits_processor") or ():
            look(self.input_ids, LOGITS.copy())
        if not kwargs.get("stream"):
            return {"choices": [{"message": {"content": "Pungsan"}}]}
        return self._chunks()

    def _chunks(self) -> Iterator[dict[str, Any]]:
        for word in ("Pungsan ", "dogs ", "[1]."):
            yield {"choices": [{"delta": {"content": word}}]}

    def save_state(self) -> types.SimpleNamespace:
        logits = np.ones((self.n_tokens, 64), np.float32)  # llama.cpp keeps a vocabulary row per token
        return types.SimpleNamespace(input_ids=list(self.input_ids), n_tokens=self.n_tokens, scores=logits)

    def load_state(self, state: types.SimpleNamespace) -> None:
        assert state.scores.shape == (state.n_tokens, 64)
        self.input_ids, self.n_tokens = list(state.input_ids), state.n_tokens
        self.loads += 1

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def exit_hooks(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(Llama=FakeLlama))
    hooks: list[Callable[[], None]] = []
    monkeypatch.setattr(embedded.atexit, "register", lambda fn, *args: hooks.append(lambda: fn(*args)))
    FakeLlama.instances.clear()
    return hooks


def _words(n: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_a_prompt_that_fits_is_left_alone(exit_hooks: list[Callable[[], None]]) -> None:
    llm = LocalLlama(Path("m.gguf"), n_ctx=256)
    messages = [{"role": "system", "content": _words(20)}, {"role": "user", "content": _words(30)}]
    assert llm.fit(messages, max_tokens=80) == messages


def test_the_longest_message_is_trimmed_in_the_middle_to_fit(exit_hooks: list[Callable[[], None]]) -> None:
    llm = LocalLlama(Path("m.gguf"), n_ctx=256)
    system = _words(20, "s")
    user = _words(400, "u")
    fitted = llm.fit([{"role": "system", "content": system}, {"role": "user", "content": user}], max_tokens=80)
    assert fitted[0]["content"] == system
    total = sum(llm.count(m["content"]) + embedded.MESSAGE_OVERHEAD for m in fitted)
    assert total <= 256 - 80 - 16
    assert fitted[1]["content"].startswith("u0 u1") and fitted[1]["content"].endswith("u399")
    assert TRIM_MARK.strip() in fitted[1]["content"]


def test_a_prompt_that_cannot_fit_is_an_error_not_a_crash(exit_hooks: list[Callable[[], None]]) -> None:
    llm = LocalLlama(Path("m.gguf"), n_ctx=256)
    messages = [{"role": "system", "content": _words(100, "s")}, {"role": "user", "content": _words(100, "u")}]
    with pytest.raises(ValueError, match="cannot be trimmed"):
        llm.fit(messages, max_tokens=200)


def test_stream_yields_pieces_and_stops_when_asked(exit_hooks: list[Callable[[], None]]) -> None:
    llm = LocalLlama(Path("m.gguf"))
    messages = [{"role": "user", "content": "Which dogs?"}]
    assert "".join(llm.stream(messages, 80, 0.0, threading.Event())) == "Pungsan dogs [1]."
    stop = threading.Event()
    pieces = []
    for piece in llm.stream(messages, 80, 0.0, stop):
        pieces.append(piece)
        stop.set()
    assert pieces == ["Pungsan "]


def test_the_native_model_is_freed_at_exit(exit_hooks: list[Callable[[], None]]) -> None:
    llm = LocalLlama(Path("m.gguf"), n_threads=3)
    native = FakeLlama.instances[-1]
    assert native.kwargs["n_threads"] == 3 and native.kwargs["n_ctx"] == 2048
    assert len(exit_hooks) == 1
    exit_hooks[0]()
    assert native.closed == 1
    llm.close()  # twice is harmless
    assert native.closed == 1
    with pytest.raises(RuntimeError, match="closed"):
        list(llm.stream([{"role": "user", "content": "Which dogs?"}], 80, 0.0, threading.Event()))


def test_the_exit_hook_does_not_keep_a_discarded_model_alive(exit_hooks: list[Callable[[], None]]) -> None:
    import gc
    import weakref

    ref = weakref.ref(LocalLlama(Path("m.gguf")))
    gc.collect()
    assert ref() is None
    exit_hooks[0]()  # a hook whose model is gone does nothing


def test_warm_reads_the_system_prompt_once_and_generates_nothing_useful(
    exit_hooks: list[Callable[[], None]],
) -> None:
    llm = LocalLlama(Path("m.gguf"))
    llm.warm("You answer from the passages.")
    native = FakeLlama.instances[-1]
    assert native.calls == [{"max_tokens": 1, "temperature": 0.0}] * 2
    assert native.prompts[0][0] == {"role": "system", "content": "You answer from the passages."}
    assert native.reused[1] == 7  # the second probe read only its own user turn
    llm.close()
    with pytest.raises(RuntimeError, match="closed"):
        llm.warm("again")


SYSTEM = "You answer from the passages."
SHARED = 7  # <system> + five words + <user>: what every answer prompt has in common


def _warmed() -> tuple[LocalLlama, FakeLlama]:
    llm = LocalLlama(Path("m.gguf"))
    llm.warm(SYSTEM)
    return llm, FakeLlama.instances[-1]


def _answer(llm: LocalLlama, user: str, system: str = SYSTEM) -> str:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return "".join(llm.stream(messages, 80, 0.0, threading.Event()))


def test_an_answer_reuses_the_system_prompt_and_nothing_the_last_question_left(
    exit_hooks: list[Callable[[], None]],
) -> None:
    llm, native = _warmed()
    _answer(llm, "Passages: [1] Pungsan dogs. Question: which dogs?")
    _answer(llm, "Passages: [1] Pungsan dogs. Question: which dogs?")  # the same prompt again
    _answer(llm, "Passages: [1] a tea set. Question: which gifts?")
    # llama.cpp alone would reuse the whole repeated prompt, and "Passages: [1]" of the third:
    # each question would then be read from a different point, and answer a little differently
    assert native.reused[2:] == [SHARED, SHARED, SHARED]
    assert native.loads == 0


def test_another_system_prompt_is_read_whole_and_the_warm_prefix_comes_back_without_rereading(
    exit_hooks: list[Callable[[], None]],
) -> None:
    llm, native = _warmed()
    _answer(llm, "Passages: [1] Pungsan dogs. Question: which dogs?")
    _answer(llm, "Rewrite: which ones?", system="You answer rewrite the question.")  # shares "<system> You answer"
    assert native.reused[-1] == 0
    _answer(llm, "Passages: [1] Pungsan dogs. Question: which dogs?")
    assert native.loads == 1 and native.reused[-1] == SHARED


def test_the_saved_prefix_does_not_keep_a_copy_of_its_logits(exit_hooks: list[Callable[[], None]]) -> None:
    llm, _ = _warmed()
    assert llm._prefix is not None
    scores = llm._prefix.state.scores
    assert scores.shape == (SHARED, 64) and scores.strides == (0, 0)  # a view of one zero, not 165 MB


def test_first_token_reads_the_next_token_log_probabilities(exit_hooks: list[Callable[[], None]]) -> None:
    llm = LocalLlama(Path("m.gguf"), n_ctx=256)
    top = llm.first_token([{"role": "user", "content": "which?"}], top_k=3)
    expected = LOGITS - np.log(np.exp(LOGITS.astype(np.float64)).sum())
    assert [t for t, _ in top[:2]] == ["t3", "t5"] and len(top) == 3
    assert [lp for _, lp in top[:2]] == pytest.approx([expected[3], expected[5]])
    assert FakeLlama.instances[0].calls[-1]["max_tokens"] == 1


def test_first_token_goes_through_litellm_as_openai_logprobs(
    exit_hooks: list[Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import litellm
    import litellm.main

    monkeypatch.setattr(litellm, "acompletion", litellm.main.acompletion)  # to the fake local model only
    from service.llm.client import LiteLLMClient, register_local_provider
    from service.settings import LOCAL_PROVIDER, Settings

    register_local_provider(LocalLlama(Path("m.gguf"), n_ctx=256))
    client = LiteLLMClient(Settings(llm_model=f"{LOCAL_PROVIDER}/fake"))
    top = asyncio.run(client.first_token([{"role": "user", "content": "which?"}], top_k=4))
    assert top is not None and [t for t, _ in top[:2]] == ["t3", "t5"] and len(top) == 4
    assert top[0][1] > top[1][1] > top[2][1]
