from __future__ import annotations

import pytest

from service.answer.answer_kinds import has_kind
from service.answer.citations import check
from service.answer.context import Passage
from service.answer.question import Question, asked_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What colour was the limousine?", "colour"),
        ("Which color are the dogs?", "colour"),
        ("How many dogs did Kim give Putin?", "count"),
        ("In what year did they sign the treaty?", "year"),
        ("Since which year have they had relations?", "year"),
        ("How much did the limousine cost?", "price"),
        ("Who gave Putin the dogs?", None),
        ("How much support did Kim pledge?", None),  # "how much" without a price
        ("How many dogs were given, and what colour was the limousine?", None),  # parts are not checked
        ("What colour was the car and who drove it?", None),  # short parts are parts too
        ("What does the colour of the flag stand for?", None),
        ("How much time did they spend in Hanoi?", None),  # time, not a price
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question: str, kind: str | None) -> None:
    assert asked_kind(question) == kind
    assert Question.read(question).kind == kind


@pytest.mark.parametrize(
    ("question", "answer", "ok"),
    [
        ("What colour was the limousine?", "The limousine was Russian-built.", False),
        ("What colour was the limousine?", "It was a black Aurus.", True),
        ("How many dogs did Kim give?", "Kim gave Putin Pungsan dogs.", False),
        ("How many dogs did Kim give?", "Kim gave him a pair of dogs.", True),
        ("How many times did they hug?", "They hugged twice.", True),
        ("How many people came?", "Thousands turned out.", True),
        ("How many people came?", "Forty-two people came.", True),
        ("In what year was the treaty signed?", "It was signed in 1961.", True),
        ("In what year was the treaty signed?", "It was signed in Moscow.", False),
        ("How much did the car cost?", "The car was a gift from Putin.", False),
        ("How much did the car cost?", "It cost $500,000.", True),
        ("Who drove the car?", "Putin drove the car.", True),
        ("What colour was the flag?", "It was reddish.", True),
        ("How many soldiers died?", "Nobody died.", True),
        ("How many of the crew came?", "All of the crew came.", True),
        ("In what year did it start?", "In the late 1990s.", True),
        ("In what year did it end?", "A year later.", True),
        ("How much did they pay?", "They paid nothing.", True),
    ],
)
def test_an_answer_has_the_kind_asked_for(question: str, answer: str, ok: bool) -> None:
    assert has_kind(Question.read(question), [answer]) is ok


def test_a_supported_answer_of_the_wrong_kind_is_refused() -> None:
    """Every word of 'Russian-built' is in the passage, but it is not a colour."""
    passages = [Passage(1, "seeds/a.txt", "Putin gave Kim a Russian-built Aurus limousine.", 1, 1, 0.9, 0)]
    assert not check(
        "The limousine Putin gave Kim was Russian-built [1].", passages, question=Question.read("Who built it?")
    ).refused
    refused = check(
        "The limousine Putin gave Kim was Russian-built [1].", passages, question=Question.read("What colour was it?")
    )
    assert refused.refused and not refused.cited
