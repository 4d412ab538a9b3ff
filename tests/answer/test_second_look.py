"""The second look (service/answer/second_look.py): the model is asked again with only the sentences the answer
rests on, and a refusal there vetoes the answer."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from service.answer import second_look
from service.answer.citations import REFUSAL, Checked
from service.answer.context import Passage
from service.answer.question import Question
from service.errors import LLMUnavailable
from service.schemas import AskRequest
from service.settings import Settings
from service.testing import FakeLLM, Messages, extractive_answer, parse_sse
from tests.conftest import make_client, wait_ready

QUESTION = "What breed of dog did Kim give Putin?"
DOGS = "Kim gave Putin a pair of native Pungsan hunting dogs [1]."
DOG_SENTENCE = (
    "Kim gave Putin a pair of native Pungsan hunting dogs – the same gift he gave to Moon Jae-in, "
    "the former South Korean president, in 2018."
)


def _passage(number: int, text: str) -> Passage:
    return Passage(number, f"seeds/{number}.txt", text, 1, 1, 0.5, number, np.zeros((0, 0), np.float32))


def _checked(answer: str, *passages: Passage) -> Checked:
    return Checked(answer, list(passages), False, 0)


# ------------------------------------------------------------------ the evidence shown


def test_evidence_is_the_sentence_each_claim_rests_on_in_order_without_repeats() -> None:
    cars = _passage(1, "Putin drove the car. The car was an Aurus limousine. Kim sat beside him.")
    dogs = _passage(2, "Kim smiled. Kim gave Putin two Pungsan hunting dogs.")
    checked = _checked("The car was an Aurus [1]. Kim gave Putin Pungsan dogs [2]. It was an Aurus [1].", cars, dogs)
    assert second_look.evidence(checked, Question.read("What car and which dogs?")) == [
        "The car was an Aurus limousine.",
        "Kim gave Putin two Pungsan hunting dogs.",
    ]


def test_a_sentence_that_refers_back_keeps_the_sentence_before() -> None:
    passage = _passage(1, "Kim gave Putin two dogs at the summit. They were Pungsan hunting dogs.")
    checked = _checked("The dogs were Pungsan hunting dogs [1].", passage)
    assert second_look.evidence(checked, Question.read("What breed were the dogs?")) == [
        "Kim gave Putin two dogs at the summit. They were Pungsan hunting dogs."
    ]


def test_a_claim_supported_by_meaning_alone_is_shown_the_whole_passage() -> None:
    passage = _passage(1, "Putin took the wheel. Kim rode beside him.")
    checked = _checked("The Russian leader drove [1].", passage)  # no claim word in any sentence
    assert second_look.evidence(checked, Question.read("Who drove?")) == ["Putin took the wheel. Kim rode beside him."]


def test_markers_that_point_at_no_cited_passage_give_no_evidence() -> None:
    checked = _checked("The car was an Aurus [3].", _passage(1, "The car was an Aurus limousine."))
    assert second_look.evidence(checked, Question.read("Which car?")) == []


def test_only_a_reply_that_opens_with_an_uncited_refusal_vetoes() -> None:
    assert second_look.vetoed("I cannot answer that from the provided")
    assert second_look.vetoed("The passages do not give the names of the dogs.")
    assert not second_look.vetoed("Kim gave Putin Pungsan dogs [1]. I cannot answer the rest.")
    assert not second_look.vetoed("The treaty does not include a time limit [1].")  # a cited answer
    assert not second_look.vetoed("")


# ------------------------------------------------------------------ in the pipeline


def _second_look_refuses() -> FakeLLM:
    """Answers the first time it is asked; refuses the second time (the second look)."""
    replies = iter([DOGS, REFUSAL])
    return FakeLLM(script=lambda m: next(replies))


def test_a_refusal_on_the_second_look_vetoes_the_answer(settings: Settings) -> None:
    llm = _second_look_refuses()
    with make_client(settings, llm) as c:
        wait_ready(c)
        body = c.post("/ask", json={"question": QUESTION}).json()
        metrics = c.get("/metrics").text
    assert body["refused"] is True and body["answer"] == REFUSAL and body["citations"] == []
    first, second = llm.calls
    shown = re.findall(r"^\[\d+\] (.+)$", second[-1]["content"], re.M)
    assert shown == [DOG_SENTENCE]  # the one sentence the answer rests on, not the passages
    assert len(re.findall(r"^\[\d+\] ", first[-1]["content"], re.M)) > 1
    assert second[-1]["content"].endswith(f"Question: {QUESTION}")
    assert llm.max_tokens == [None, second_look.MAX_TOKENS]
    assert body["timings_ms"]["confirm"] > 0
    assert 'citeqa_second_look_total{outcome="vetoed"} 1.0' in metrics


def test_a_vetoed_answer_streams_its_words_then_ends_in_a_refusal(settings: Settings) -> None:
    with make_client(settings, _second_look_refuses()) as c:
        wait_ready(c)
        with c.stream("POST", "/ask/stream", json={"question": QUESTION}) as s:
            events = parse_sse(s.read().decode())
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"token"}
    assert "Pungsan" in "".join(data["text"] for name, data in events if name == "token")
    assert events[-1][1]["refused"] is True and events[-1][1]["answer"] == REFUSAL


def test_an_answer_the_second_look_confirms_is_kept(settings: Settings) -> None:
    llm = FakeLLM(script=lambda m: DOGS)
    with make_client(settings, llm) as c:
        wait_ready(c)
        body = c.post("/ask", json={"question": QUESTION}).json()
    assert body["refused"] is False and "Pungsan" in body["answer"] and len(body["citations"]) == 1
    assert len(llm.calls) == 2


def test_the_second_look_can_be_switched_off(settings: Settings) -> None:
    llm = _second_look_refuses()
    with make_client(settings.model_copy(update={"confirm_answers": False}), llm) as c:
        wait_ready(c)
        body = c.post("/ask", json={"question": QUESTION}).json()
    assert body["refused"] is False and len(llm.calls) == 1 and body["timings_ms"]["confirm"] == 0


def test_a_refusal_is_not_looked_at_twice(settings: Settings) -> None:
    llm = FakeLLM(script=lambda m: REFUSAL)
    with make_client(settings, llm) as c:
        wait_ready(c)
        answerer = c.app.state.citeqa.answerer  # type: ignore[attr-defined]
        done = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
    assert done.response.refused and len(llm.calls) == 1 and done.second_look is None
    assert done.response.timings_ms.confirm == 0


def test_the_second_look_counts_its_tokens_and_reports_its_reply(settings: Settings) -> None:
    llm = FakeLLM(script=extractive_answer)
    with make_client(settings, llm) as c:
        wait_ready(c)
        answerer = c.app.state.citeqa.answerer  # type: ignore[attr-defined]
        on = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
        answerer.settings = answerer.settings.model_copy(update={"confirm_answers": False})
        off = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
    assert not on.response.refused and len(llm.calls) == 3
    assert on.second_look is not None and on.second_look.outcome == "kept"
    assert on.second_look.reply.strip() == extractive_answer(llm.calls[1]).strip()  # what the model wrote
    assert on.usage.prompt_tokens > off.usage.prompt_tokens
    assert on.usage.completion_tokens > off.usage.completion_tokens


def test_when_the_second_look_fails_the_checked_answer_stands(settings: Settings) -> None:
    replies = iter([DOGS])

    def script(messages: Messages) -> str:
        reply = next(replies, None)
        if reply is None:
            raise LLMUnavailable("connection refused")
        return reply

    with make_client(settings, FakeLLM(script=script)) as c:
        wait_ready(c)
        r = c.post("/ask", json={"question": QUESTION})
        metrics = c.get("/metrics").text
    assert r.status_code == 200 and r.json()["refused"] is False and "Pungsan" in r.json()["answer"]
    assert 'citeqa_second_look_total{outcome="failed"} 1.0' in metrics


def test_a_second_look_that_hangs_is_cut_short_and_the_answer_stands(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(second_look, "TIMEOUT", 0.3)
    llm = FakeLLM(script=lambda m: DOGS)
    calls = {"n": 0}
    original = llm.stream

    async def stream(messages: Messages, *, max_tokens: int | None = None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            await asyncio.sleep(5)  # the second look hangs; had it been waited for, it would be "kept"
        async for piece in original(messages, max_tokens=max_tokens):
            yield piece

    llm.stream = stream  # type: ignore[method-assign]
    with make_client(settings, llm) as c:
        wait_ready(c)
        body = c.post("/ask", json={"question": QUESTION}).json()
        metrics = c.get("/metrics").text
    assert body["refused"] is False and "Pungsan" in body["answer"]
    assert 'citeqa_second_look_total{outcome="failed"} 1.0' in metrics


# ------------------------------------------------------------------ read from token probabilities


def test_the_refusal_probability_sums_the_tokens_that_open_the_refusal() -> None:
    top = [("Kim", np.log(0.5)), ("I", np.log(0.3)), (" I", np.log(0.1)), ("In", np.log(0.05)), ("It", np.log(0.05))]
    assert second_look.refusal_probability(top) == pytest.approx(0.4)  # "In" and "It" open answers
    assert second_look.refusal_probability([("The", 0.0)]) == 0.0
    assert second_look.refusal_probability([]) == 0.0


def _one_token(p_refuse: float):  # type: ignore[no-untyped-def]
    """A model that reports log-probabilities: the first token of a refusal with `p_refuse`."""
    return lambda m: sorted([("I", float(np.log(p_refuse))), ("Kim", float(np.log(1 - p_refuse)))], key=lambda t: -t[1])


@pytest.mark.parametrize(("p_refuse", "threshold", "vetoed"), [(0.4, 0.5, False), (0.6, 0.5, True), (0.4, 0.3, True)])
def test_with_log_probabilities_the_answer_is_vetoed_above_the_threshold(
    settings: Settings, p_refuse: float, threshold: float, vetoed: bool
) -> None:
    llm = FakeLLM(script=lambda m: DOGS, first_tokens=_one_token(p_refuse))
    with make_client(settings.model_copy(update={"confirm_refusal_p": threshold}), llm) as c:
        wait_ready(c)
        answerer = c.app.state.citeqa.answerer  # type: ignore[attr-defined]
        done = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
    assert done.response.refused is vetoed
    assert done.second_look is not None and done.second_look.refusal_p == pytest.approx(p_refuse)
    assert done.second_look.outcome == ("vetoed" if vetoed else "kept")
    assert llm.max_tokens == [None, 1]  # one token read, no reply written
    shown = re.findall(r"^\[\d+\] (.+)$", llm.calls[1][-1]["content"], re.M)
    assert shown == [DOG_SENTENCE]


def test_a_provider_without_log_probabilities_is_read_from_its_text(settings: Settings) -> None:
    llm = _second_look_refuses()  # its first_token reports nothing
    with make_client(settings.model_copy(update={"confirm_refusal_p": 1.0}), llm) as c:
        wait_ready(c)
        body = c.post("/ask", json={"question": QUESTION}).json()
    assert body["refused"] is True  # the written refusal vetoes, whatever the threshold
    assert llm.max_tokens == [None, second_look.MAX_TOKENS]
