"""The question read once (service/answer/question.py): parts, forms, count, yes/no and kind."""

from __future__ import annotations

from service.answer.question import NO_QUESTION, Question, is_compound, question_parts


def test_a_simple_question_is_its_own_only_part_and_shares_its_forms() -> None:
    q = Question.read("Which dogs did Kim give Putin?")
    assert [p.text for p in q.parts] == [q.text]
    assert q.parts[0].forms is q.forms  # computed once
    assert "dog" in q.forms and "dog" in q.all_forms
    assert not q.counts and not q.yes_no and q.kind is None


def test_a_compound_question_has_a_part_per_sub_question() -> None:
    q = Question.read("Which airport did Putin land at, and which city did he fly to next?")
    assert [p.text for p in q.parts] == ["Which airport did Putin land at", "which city did he fly to next?"]
    assert "airport" in q.parts[0].forms and "airport" not in q.parts[1].forms
    assert q.kind is None  # the parts may ask for different kinds


def test_short_parts_are_not_retrieved_for_but_still_make_the_question_compound() -> None:
    question = "What colour was the car and who drove it?"
    assert is_compound(question)
    assert question_parts(question) == [question]


def test_counts_yes_no_and_kind() -> None:
    assert Question.read("How many dogs did Kim give?").counts
    assert Question.read("How many dogs did Kim give?").kind == "count"
    assert Question.read("How long did the talks last?").counts
    assert Question.read("Did Putin drive the limousine?").yes_no
    assert Question.read("What colour was the limousine?").kind == "colour"
    assert Question.read("How much time did they spend?").kind is None


def test_no_question_claims_nothing_about_the_answer() -> None:
    assert NO_QUESTION.text == "" and NO_QUESTION.all_forms == frozenset()
    assert not NO_QUESTION.counts and not NO_QUESTION.yes_no and NO_QUESTION.kind is None
