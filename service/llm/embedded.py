"""The embedded default LLM: a GGUF model run in-process by llama.cpp.

llama.cpp aborts the whole process when a prompt overflows its context, so every prompt is
measured with the model's own tokenizer and trimmed to fit before it is decoded. One model
instance decodes one request at a time; the service's LLM gate queues the rest.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD = 8  # chat-template tokens around each message
TRIM_MARK = " … "


class LocalLlama:
    def __init__(self, path: Path, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        from llama_cpp import Llama  # heavy native import: only when the local model is used

        self.path = path
        self.n_ctx = n_ctx
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or max(1, os.cpu_count() or 1),
            n_batch=512,
            verbose=False,
        )
        self._lock = threading.Lock()
        self._closed = False
        self._prefix: _Prefix | None = None  # the warmed system prompt, see warm()
        # Free the native model while the interpreter is still whole: left to Llama.__del__ at
        # exit, it prints a TypeError traceback after every `citeqa ask`. A weak reference, so the
        # hook does not keep a discarded model (a gigabyte) alive.
        atexit.register(_close_if_alive, weakref.ref(self))

    def close(self) -> None:
        """Free the native model; later calls fail with RuntimeError instead of touching freed memory."""
        if self._lock.acquire(timeout=5):  # never hang an exit on a decode in progress
            try:
                if not self._closed:
                    self._closed = True
                    self._llm.close()
            finally:
                self._lock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the local model is closed")

    def warm(self, system: str) -> None:
        """Read the system prompt once, at start-up, and keep its state.

        Every answer starts with this system prompt; without it the first question of a fresh
        process pays for reading it (about 10 s on 2 cores). Each later prompt reuses exactly this
        prefix and reads the rest in one batch, whatever was asked before: llama.cpp's own reuse
        of the longest shared prefix made an answer depend slightly on the previous question (the
        same question asked twice could come out differently). A call with another system prompt
        (a follow-up's rewrite) evicts it; the saved state brings it back without re-reading."""
        with self._lock:
            self._check_open()
            ids = []
            for probe in ("Hello", "Goodbye"):  # what two prompts share is the reusable prefix
                messages = [{"role": "system", "content": system}, {"role": "user", "content": probe}]
                self._llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)  # type: ignore[arg-type]
                ids.append(list(self._llm.input_ids[: self._llm.n_tokens]))
            shared = 0
            for a, b in zip(*ids, strict=False):
                if a != b:
                    break
                shared += 1
            self._llm.n_tokens = shared
            self._prefix = _Prefix(system, ids[0][:shared], _without_logits(self._llm.save_state()))

    def _start_from_prefix(self, messages: list[dict[str, str]]) -> None:
        """Before a prompt: keep the warmed system prompt's state and nothing after it."""
        llm, prefix = self._llm, self._prefix
        if prefix is None:
            return
        if not (messages and messages[0]["role"] == "system" and messages[0]["content"] == prefix.system):
            llm.n_tokens = 0  # another prompt: read it whole, so its answer does not depend on the last one
            return
        n = len(prefix.ids)
        if llm.n_tokens < n or list(llm.input_ids[:n]) != prefix.ids:
            llm.load_state(prefix.state)
        llm.n_tokens = n

    def count(self, text: str) -> int:
        self._check_open()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def fit(self, messages: list[dict[str, str]], max_tokens: int) -> list[dict[str, str]]:
        """Trim the middle of the longest message until prompt + answer fit in the context."""
        budget = self.n_ctx - max_tokens - 16
        messages = [dict(m) for m in messages]
        for _ in range(8):
            sizes = [self.count(m["content"]) + MESSAGE_OVERHEAD for m in messages]
            excess = sum(sizes) - budget
            if excess <= 0:
                return messages
            longest = max(range(len(messages)), key=lambda i: sizes[i])
            tokens = self._llm.tokenize(messages[longest]["content"].encode(), add_bos=False, special=False)
            keep = len(tokens) - excess - 8
            if keep <= 16:
                raise ValueError("prompt cannot be trimmed to fit the model's context")
            head, tail = tokens[: keep * 2 // 3], tokens[len(tokens) - keep // 3 :]
            detok = self._llm.detokenize
            messages[longest]["content"] = (
                detok(head).decode("utf-8", "ignore") + TRIM_MARK + detok(tail).decode("utf-8", "ignore")
            )
            log.warning("prompt trimmed by %d tokens to fit n_ctx=%d", excess, self.n_ctx)
        raise ValueError("prompt cannot be trimmed to fit the model's context")

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float, stop: threading.Event
    ) -> Iterator[str]:
        """Yield text pieces as they are decoded; stop early once `stop` is set (client gone)."""
        with self._lock:
            self._check_open()
            fitted = self.fit(messages, max_tokens)
            self._start_from_prefix(fitted)
            chunks = self._llm.create_chat_completion(
                messages=fitted,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
            )
            for chunk in chunks:
                if stop.is_set():
                    break
                piece = chunk["choices"][0]["delta"].get("content")  # type: ignore[index,union-attr]
                if piece:
                    yield str(piece)

    def first_token(self, messages: list[dict[str, str]], top_k: int) -> list[tuple[str, float]]:
        """The `top_k` likeliest first tokens of the reply, with their log-probabilities.

        Read from the logits llama.cpp computes for the last prompt position anyway, through a
        logits processor that only looks: `logprobs=True` would need the model built with
        `logits_all`, which keeps a row of the vocabulary for every prompt token (1.2 GB at
        n_ctx=2048) and computes the output layer for each of them."""
        seen: list[np.ndarray] = []

        def look(_ids: Any, scores: np.ndarray) -> np.ndarray:
            if not seen:
                seen.append(np.array(scores, dtype=np.float64))
            return scores

        with self._lock:
            self._check_open()
            fitted = self.fit(messages, 1)
            self._start_from_prefix(fitted)
            self._llm.create_chat_completion(
                messages=fitted,  # type: ignore[arg-type]
                max_tokens=1,
                temperature=0.0,
                logits_processor=[look],  # type: ignore[arg-type]
            )
            if not seen:
                return []
            logits = seen[0]
            logprobs = logits - logits.max()
            logprobs -= np.log(np.exp(logprobs).sum())
            best = np.argsort(-logprobs)[:top_k]
            detok = self._llm.detokenize
            return [(detok([int(i)]).decode("utf-8", "replace"), float(logprobs[i])) for i in best]


@dataclass(frozen=True)
class _Prefix:
    system: str
    ids: list[int]
    state: Any  # llama_cpp.LlamaState


def _without_logits(state: Any) -> Any:
    """A saved state minus its copy of the prompt's logits: one row of the vocabulary (151,936
    floats) per prompt token, 165 MB for the system prompt, that sampling never reads back (only
    logprobs do, which we do not ask for). A read-only view of a single zero keeps the shape
    load_state expects."""
    scores = getattr(state, "scores", None)
    if isinstance(scores, np.ndarray):
        state.scores = np.broadcast_to(np.zeros((), scores.dtype), scores.shape)
    return state


def _close_if_alive(ref: weakref.ref[LocalLlama]) -> None:
    model = ref()
    if model is not None:
        model.close()
