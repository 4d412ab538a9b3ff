"""One question, end to end: rewrite a follow-up, retrieve, pick context, ask the LLM, check citations,
and take a second look at an answer that passed (service/answer/second_look.py).

`stream()` yields the model's text as it is written and ends with the checked, cited response;
`ask()` is the same without the pieces. Weak evidence is refused before any LLM call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from index.embedder import Embedder
from index.tokens import count_tokens
from service.answer import citations, cpu, second_look
from service.answer.citations import echoes, is_refusal
from service.answer.context import Budget, gather_context
from service.answer.guard import looks_like_injection
from service.answer.prompts import Prompts
from service.answer.question import Question
from service.answer.retrieval import Retriever
from service.answer.second_look import SecondLook
from service.answer.sentence_vectors import SentenceVectors
from service.answer.streaming import SentenceRelease
from service.answer.types import Checked, Passage
from service.answer.words import word_set
from service.errors import CiteqaError
from service.llm.client import LLM, complete
from service.llm.queue import LLMGate
from service.schemas import AskRequest, AskResponse, Citation, Timings, Turn
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Token:
    text: str


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Done:
    response: AskResponse
    usage: Usage = field(default_factory=Usage)
    raw: str = ""  # the model's own text, before the citation check ("" when the LLM was not asked)
    second_look: SecondLook | None = None  # None when there was none (refused, or switched off)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Answerer:
    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        embedder: Embedder,
        llm: LLM,
        prompts: Prompts,
        gate: LLMGate,
        sentences: SentenceVectors | None = None,
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.sentences = sentences or SentenceVectors(embedder.encode_documents)
        self.embedder = embedder
        self.llm = llm
        self.prompts = prompts
        self.gate = gate

    async def ask(self, request: AskRequest) -> Done:
        async for event in self.stream(request):
            if isinstance(event, Done):
                return event
        raise RuntimeError("answer stream ended without a result")  # pragma: no cover

    def passages_for(self, question: Question, top_k: int) -> list[Passage]:
        return gather_context(self.sentences, self.retriever, question, top_k, Budget.from_settings(self.settings))

    async def rewrite(self, question: str, history: list[Turn]) -> str:
        turns = history[-2 * self.settings.history_max_turns :] if self.settings.history_max_turns else []
        if not turns:
            return question
        lines = "\n".join(f"{t.role}: {t.content[:600]}" for t in turns)
        messages = [
            {"role": "system", "content": self.prompts["rewrite_system"].render()},
            {
                "role": "user",
                "content": self.prompts["rewrite_user"].render(history=lines, question=question),
            },
        ]
        async with self.gate.slot():
            text = await complete(self.llm, messages, max_tokens=60)
        first = text.strip().strip('"').splitlines()  # a reply of only quotes leaves nothing
        text = first[0].strip() if first else ""
        # The rewrite is shown to the client (rewritten_question): one that repeats the rewrite's
        # instructions, or refuses, is not a question, and the user's own question is used instead.
        private = word_set(messages[0]["content"])
        if not 3 <= len(text) <= 500 or echoes(text, private) or is_refusal(text):
            return question
        return text

    def answer_messages(self, numbered: list[tuple[int, str]], question: str) -> list[dict[str, str]]:
        """The answer prompt: the system rules, then the numbered passages and the question."""
        return [
            {"role": "system", "content": self.prompts["answer_system"].render()},
            {
                "role": "user",
                "content": self.prompts["answer_user"].render(
                    passages="\n".join(f"[{n}] {text}" for n, text in numbered), question=question
                ),
            },
        ]

    async def second_look(
        self, question: Question, checked: Checked, usage: Usage
    ) -> tuple[Checked, SecondLook | None]:
        """Ask again with only the sentences the answer rests on; a likely refusal there (read from
        the first token's probabilities, or from the reply's text when the provider gives none)
        vetoes the answer, a failed call leaves it standing (see service/answer/second_look.py).
        The caller holds the LLM slot, so the second look does not queue behind other requests."""
        sentences = second_look.evidence(checked, question, self.retriever.rarity)
        if not sentences:
            return checked, None
        messages = self.answer_messages(list(enumerate(sentences, start=1)), question.text)
        threshold = self.settings.confirm_refusal_p
        try:
            async with asyncio.timeout(min(second_look.TIMEOUT, self.settings.llm_timeout)):
                top = await self.llm.first_token(messages, top_k=second_look.TOP_K)
                reply = "" if top is not None else await complete(self.llm, messages, max_tokens=second_look.MAX_TOKENS)
        except (CiteqaError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, CiteqaError) else "no reply in time"
            log.warning("second look failed, the checked answer stands: %s", reason)
            return checked, SecondLook("failed")
        usage.prompt_tokens += sum(count_tokens(m["content"]) for m in messages)
        if top is not None:  # the model's own probability that the evidence does not answer
            usage.completion_tokens += 1
            p = second_look.refusal_probability(top)
            reply = top[0][0] if top else ""
            if p > threshold:
                return Checked.refusal(checked.dropped, checked.removed), SecondLook("vetoed", reply, p)
            return checked, SecondLook("kept", reply, p)
        usage.completion_tokens += count_tokens(reply)
        if second_look.vetoed(reply):
            return Checked.refusal(checked.dropped, checked.removed), SecondLook("vetoed", reply)
        return checked, SecondLook("kept", reply)

    async def stream(self, request: AskRequest) -> AsyncIterator[Token | Done]:
        started = time.perf_counter()
        s = self.settings
        question = request.question
        rewritten = None
        if request.history:
            rewritten = await self.rewrite(question, request.history)
            question = rewritten
        t_rewrite = time.perf_counter()
        asked = Question.read(question)  # read once, for retrieval, context and the checks
        # CPU work (embedding, both searches, sentence scoring) runs off the event loop (cpu.py), so
        # the loop keeps answering /health and other requests while it runs.
        passages = await cpu.run(self.passages_for, asked, request.top_k or s.top_k)
        t_retrieve = time.perf_counter()

        usage = Usage()
        raw = ""
        look: SecondLook | None = None
        if looks_like_injection(request.question):
            passages = []  # refused without asking the LLM: see service/answer/guard.py
        if passages and max(p.score for p in passages) >= s.min_relevance:
            messages = self.answer_messages([(p.number, p.labelled) for p in passages], question)
            system = messages[0]["content"]
            usage.prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
            async with self.gate.slot():  # held through the second look
                release = SentenceRelease(system, public=" ".join([question, *(p.text for p in passages)]))
                async for piece in self.llm.stream(messages):
                    raw += piece
                    if shown := release.feed(piece):
                        yield Token(shown)
                if shown := release.flush():
                    yield Token(shown)
                usage.completion_tokens = count_tokens(raw)
                checked = await cpu.run(
                    citations.check,
                    raw,
                    passages,
                    embed=self.embedder.encode_documents,
                    question=asked,
                    private=system,
                    idf=self.retriever.rarity,
                )
                t_generate = time.perf_counter()
                if s.confirm_answers and not checked.refused:
                    checked, look = await self.second_look(asked, checked, usage)
        else:
            checked = Checked.refusal()
            t_generate = time.perf_counter()
        t_confirm = time.perf_counter() if look else t_generate

        response = AskResponse(
            answer=checked.answer,
            refused=checked.refused,
            citations=[
                Citation(
                    id=i,
                    source=p.source,
                    start_line=p.start_line,
                    end_line=p.end_line,
                    text=p.text,
                    score=round(p.score, 4),
                    heading=p.heading,
                    anchor=p.anchor,
                    page=p.page,
                )
                for i, p in enumerate(checked.cited, start=1)
            ],
            model=self.llm.name,
            timings_ms=Timings(
                rewrite=_ms(t_rewrite - started),
                retrieve=_ms(t_retrieve - t_rewrite),
                generate=_ms(t_generate - t_retrieve),
                confirm=_ms(t_confirm - t_generate),
                total=_ms(t_confirm - started),
            ),
            rewritten_question=rewritten,
        )
        yield Done(response, usage, raw, look)
