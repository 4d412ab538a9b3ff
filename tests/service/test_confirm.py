"""The second look (service/confirm.py): the model is asked again with only the sentences the answer
rests on, and a refusal there vetoes the answer."""

from __future__ import annotations

import asyncio
import re

import numpy as np

from service import confirm
from service.citations import REFUSAL, Checked
from service.context import Passage
from service.errors import LLMUnavailable
from service.schemas import AskRequest
from service.settings import Settings
from service.testing import FakeLLM, Messages, extractive_answer
from tests.conftest import make_client, wait_ready

QUESTION = "What breed of dog did Kim give Putin?"
DOGS = "Kim gave Putin a pair of native Pungsan hunting dogs [1]."


def _passage(number: int, text: str) -> Passage:
    return Passage(number, f"seeds/{number}.txt", text, 1, 1, 0.5, number, np.zeros((0, 0), np.float32))


def test_evidence_is_the_sentence_each_claim_rests_on_in_order_without_repeats() -> None:
    cars = _passage(1, "Putin drove the car. The car was an Aurus limousine. It was black.")
    dogs = _passage(2, "Kim smiled. Kim gave Putin two Pungsan hunting dogs.")
    checked = Checked(
        "The car was an Aurus [1]. Kim gave Putin Pungsan dogs [2]. It was an Aurus [1].", [cars, dogs], False, 0
    )
    assert confirm.evidence(checked, "What car and which dogs?") == [
        "The car was an Aurus limousine.",
        "Kim gave Putin two Pungsan hunting dogs.",
    ]


def test_markers_that_point_at_no_cited_passage_give_no_evidence() -> None:
    checked = Checked("The car was an Aurus [3].", [_passage(1, "The car was an Aurus limousine.")], False, 0)
    assert confirm.evidence(checked, "Which car?") == []


def test_only_a_reply_that_opens_with_a_refusal_vetoes() -> None:
    assert confirm.vetoed("I cannot answer that from the provided")
    assert confirm.vetoed("The passages do not give the names of the dogs.")
    assert not confirm.vetoed("Kim gave Putin Pungsan dogs [1]. I cannot answer the rest.")
    assert not confirm.vetoed("")


def _second_look_refuses() -> FakeLLM:
    """Answers the first time it is asked; refuses the second time (the second look)."""
    replies = iter([DOGS, REFUSAL])
    return FakeLLM(script=lambda m: next(replies))


def test_a_refusal_on_the_second_look_vetoes_the_answer(settings: Settings) -> None:
    llm = _second_look_refuses()
    with make_client(settings, llm) as c:
        wait_ready(c)
        body = c.post("/ask", json={"question": QUESTION}).json()
    assert body["refused"] is True and body["answer"] == REFUSAL and body["citations"] == []
    first, second = llm.calls
    shown = re.findall(r"^\[\d+\] (.+)$", second[-1]["content"], re.M)
    assert shown == [  # the one sentence the answer rests on, not the passages
        "Kim gave Putin a pair of native Pungsan hunting dogs – the same gift he gave to Moon Jae-in, "
        "the former South Korean president, in 2018."
    ]
    assert len(re.findall(r"^\[\d+\] ", first[-1]["content"], re.M)) > 1
    assert body["timings_ms"]["confirm"] >= 0


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
    assert body["refused"] is False and len(llm.calls) == 1


def test_a_refusal_is_not_looked_at_twice(settings: Settings) -> None:
    llm = FakeLLM(script=lambda m: REFUSAL)
    with make_client(settings, llm) as c:
        wait_ready(c)
        answerer = c.app.state.citeqa.answerer  # type: ignore[attr-defined]
        done = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
    assert done.response.refused and len(llm.calls) == 1
    assert done.usage.prompt_tokens > 0


def test_the_second_look_counts_its_tokens(settings: Settings) -> None:
    llm = FakeLLM(script=extractive_answer)
    with make_client(settings, llm) as c:
        wait_ready(c)
        answerer = c.app.state.citeqa.answerer  # type: ignore[attr-defined]
        on = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
        answerer.settings = answerer.settings.model_copy(update={"confirm_answers": False})
        off = asyncio.run(answerer.ask(AskRequest(question=QUESTION)))
    assert not on.response.refused and len(llm.calls) == 3
    assert on.usage.prompt_tokens > off.usage.prompt_tokens
    assert on.usage.completion_tokens > off.usage.completion_tokens


def test_an_upstream_failure_on_the_second_look_is_a_typed_503(settings: Settings) -> None:
    replies = iter([DOGS])

    def script(messages: Messages) -> str:
        reply = next(replies, None)
        if reply is None:
            raise LLMUnavailable("connection refused")
        return reply

    with make_client(settings, FakeLLM(script=script)) as c:
        wait_ready(c)
        r = c.post("/ask", json={"question": QUESTION})
        assert c.get("/health").status_code == 200
    assert r.status_code == 503 and r.json()["error"]["code"] == "llm_unavailable"
