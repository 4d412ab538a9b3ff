from __future__ import annotations

import re

import numpy as np
import pytest

from service.answer.citations import REFUSAL, check, is_refusal, lexical_support
from service.answer.context import Passage
from service.answer.question import Question
from service.answer.words import Rarity, unseen_weight


def _p(n: int, text: str, source: str = "seeds/a.txt") -> Passage:
    return Passage(number=n, source=source, text=text, start_line=n, end_line=n, score=0.8, chunk_id=n)


PASSAGES = [
    _p(1, "Kim gave Putin a pair of native Pungsan hunting dogs.", "seeds/000.txt"),
    _p(2, "Putin gave Kim a luxury limousine made by the Aurus automaker.", "seeds/002.txt"),
]


def _markers(answer: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", answer)]


def test_correct_markers_are_kept() -> None:
    out = check("Kim gave Putin Pungsan hunting dogs [1].", PASSAGES)
    assert not out.refused
    assert out.answer == "Kim gave Putin Pungsan hunting dogs [1]."
    assert [p.source for p in out.cited] == ["seeds/000.txt"]


def test_marker_pointing_nowhere_is_replaced_by_the_supporting_passage() -> None:
    out = check("Kim gave Putin Pungsan hunting dogs [7].", PASSAGES)
    assert _markers(out.answer) == [1]
    assert out.cited[0].source == "seeds/000.txt"
    assert out.dropped == 1


def test_wrong_marker_is_moved_to_the_passage_that_supports_the_sentence() -> None:
    out = check("The limousine was made by Aurus [1]. Kim gave Putin Pungsan dogs [1].", PASSAGES)
    # Renumbered in order of appearance: the Aurus passage becomes [1], the dogs passage [2].
    assert out.answer == "The limousine was made by Aurus [1]. Kim gave Putin Pungsan dogs [2]."
    assert [p.source for p in out.cited] == ["seeds/002.txt", "seeds/000.txt"]


def test_every_marker_matches_a_citation() -> None:
    out = check("Aurus made the car [2][1]. The dogs were Pungsan hunting dogs [1, 2].", PASSAGES)
    assert set(_markers(out.answer)) == set(range(1, len(out.cited) + 1))


def test_unsupported_claim_loses_its_citation_and_all_unsupported_is_refused() -> None:
    out = check("The summit cost three billion roubles [1].", PASSAGES)
    assert out.refused and out.answer == REFUSAL and out.cited == []


def test_model_refusal_becomes_a_refusal_without_citations() -> None:
    out = check("The passages do not mention who won the World Cup [1].", PASSAGES)
    assert out.refused and out.cited == []


def test_grounded_answer_with_a_caveat_is_not_a_refusal() -> None:
    out = check("Kim gave Putin Pungsan dogs [1]. The passages do not mention their names.", PASSAGES)
    assert not out.refused and _markers(out.answer) == [1]


def test_embedding_support_accepts_a_paraphrase() -> None:
    vec = np.ones((1, 4), dtype=np.float32) / 2.0
    passages = [Passage(1, "seeds/a.txt", "Completely different wording about wine here.", 1, 1, 0.9, 0, vectors=vec)]
    out = check("Synonymous phrasing on wine [1].", passages, embed=lambda texts: np.tile(vec, (len(texts), 1)))
    assert not out.refused and out.cited


def test_embedding_similarity_does_not_rescue_a_claim_with_no_word_in_the_passage() -> None:
    """'The limousine was red' is close in embedding space to a passage about the limousine, but
    'red' is nowhere in it: the claim is unsupported."""
    vec = np.ones((1, 4), dtype=np.float32) / 2.0
    passages = [Passage(1, "seeds/a.txt", "Putin gave Kim a luxury limousine.", 1, 1, 0.9, 0, vectors=vec)]
    out = check(
        "The limousine Putin gave Kim was red [1].",
        passages,
        embed=lambda texts: np.tile(vec, (len(texts), 1)),
        question=Question.read("What colour was the limousine Putin gave Kim?"),
    )
    assert out.refused and out.cited == []


def test_words_repeated_from_the_question_need_no_support() -> None:
    """The answer restates the question in its own words; only its new words must be in the passage."""
    passages = [Passage(1, "seeds/a.txt", "The two despots chatted late into the evening over red wine.", 1, 1, 0.9, 0)]
    question = "What were the two leaders sipping during their after-show conversation?"
    out = check(
        "The two leaders were sipping red wine during their after-show conversation [1].",
        passages,
        question=Question.read(question),
    )
    assert not out.refused and [p.source for p in out.cited] == ["seeds/a.txt"]
    without_question = check(
        "The two leaders were sipping red wine during their after-show conversation [1].", passages
    )
    assert without_question.refused


def test_is_refusal_patterns() -> None:
    assert is_refusal(REFUSAL)
    assert is_refusal("The provided passages do not contain this information.")
    assert not is_refusal("Kim gave Putin two dogs.")


def test_initials_and_acronyms_in_an_answer_do_not_split_its_sentences() -> None:
    passages = [
        Passage(
            1,
            "seeds/a.txt",
            "The U.S. Embassy in Hanoi criticised the visit of Gennady S. Bezdetko.",
            1,
            1,
            0.9,
            0,
        )
    ]
    out = check("The U.S. Embassy in Hanoi criticised the visit of Gennady S. Bezdetko [1].", passages)
    assert out.answer == "The U.S. Embassy in Hanoi criticised the visit of Gennady S. Bezdetko [1]."


def test_a_sentence_that_only_restates_the_question_is_not_an_answer() -> None:
    passages = [Passage(1, "seeds/a.txt", "Putin visited Hanoi and Vietnam's leaders welcomed him.", 1, 1, 0.9, 0)]
    question = "Which agreements did Putin sign with Vietnam during his visit to Hanoi?"
    out = check(
        "The agreements Putin signed with Vietnam during his visit to Hanoi are [1] and [3].",
        passages,
        question=Question.read(question),
    )
    assert out.refused and out.cited == []


def test_a_yes_no_answer_may_restate_the_question() -> None:
    passages = [Passage(1, "seeds/a.txt", "Putin drove the limousine himself through Pyongyang.", 1, 1, 0.9, 0)]
    out = check(
        "Yes, Putin drove the limousine himself [1].",
        passages,
        question=Question.read("Did Putin drive the limousine?"),
    )
    assert not out.refused and out.cited


def test_a_missing_rare_word_outweighs_common_words_that_are_there() -> None:
    """'Russian' is on every page, 'artist' on none: an answer naming 'a Russian artist' is not
    supported by a passage that only says 'Russian'."""
    passages = [
        Passage(
            1,
            "seeds/a.txt",
            "Kim gave Putin a painting, and Putin gave Kim a Russian limousine.",
            1,
            1,
            0.9,
            0,
        )
    ]
    question = "Who painted the painting Kim gave Putin?"
    answer = "The painting Kim gave Putin was painted by a Russian artist [1]."
    assert not check(answer, passages, question=Question.read(question)).refused  # unweighted: 1 of 2 new words found
    idf = {"russian": 0.1, "painting": 1.0, "kim": 0.05, "putin": 0.05, "limousine": 1.5}
    out = check(answer, passages, question=Question.read(question), idf=idf)
    assert out.refused and out.cited == []
    # The precomputed form the retriever hands over weighs words the same way.
    assert check(answer, passages, question=Question.read(question), idf=Rarity(idf)) == out


def test_rarity_knows_the_weight_of_an_unseen_word() -> None:
    idf = {"russian": 0.1, "limousine": 1.5}
    assert Rarity(idf).unseen == 1.5 == unseen_weight(idf) == unseen_weight(Rarity(idf))
    assert unseen_weight(None) == unseen_weight({}) == Rarity({}).unseen == 1.0
    passage = Passage(1, "seeds/a.txt", "A Russian limousine.", 1, 1, 0.9, 0)
    # "artist" is unseen, so it weighs as much as the rarest word: 0.1 found of 0.1 + 1.5.
    assert lexical_support("a Russian artist", passage.text, idf=Rarity(idf)) == pytest.approx(0.1 / 1.6)


def test_unsupported_sentences_are_removed_and_supported_ones_kept() -> None:
    passages = [Passage(1, "seeds/a.txt", "Kim gave Putin a pair of Pungsan hunting dogs.", 1, 1, 0.9, 0)]
    out = check("Kim gave Putin Pungsan dogs [1]. They will guard the Kremlin for decades.", passages)
    assert out.answer == "Kim gave Putin Pungsan dogs [1]."
    assert out.removed == 1 and not out.refused


def test_an_irregular_form_of_a_question_word_is_a_restatement_not_a_claim() -> None:
    """'flew' restates the question's 'fly': only 'Vietnam' must be in the passage."""
    passages = [Passage(1, "seeds/a.txt", "Putin waves at Kim from his jet as he leaves for Vietnam.", 1, 1, 0.9, 0)]
    out = check("He flew to Vietnam next [1].", passages, question=Question.read("Which city did Putin fly to next?"))
    assert not out.refused and out.answer == "He flew to Vietnam next [1]."


def test_a_base_form_is_supported_by_its_inflected_form_in_the_passage() -> None:
    passage = Passage(1, "seeds/a.txt", "Putin looked on and stroked the animal's head.", 1, 1, 0.9, 0)
    assert lexical_support("Putin gave the horse a stroke", passage.text) < 1.0  # 'gave', 'horse' are not there
    assert lexical_support("Putin would stroke the animal", passage.text) == 1.0


def test_a_number_word_is_the_claim_of_a_how_many_answer() -> None:
    """'two' is what answers 'how many'; the sentence's other words restate the question."""
    passages = [Passage(1, "seeds/a.txt", "Kim gave Putin two Pungsan dogs.", 1, 1, 0.9, 0)]
    question = "How many dogs did Kim give Putin?"
    assert not check("Kim gave Putin two dogs [1].", passages, question=Question.read(question)).refused
    assert check("Kim gave Putin three dogs [1].", passages, question=Question.read(question)).refused
    hugs = [Passage(1, "seeds/a.txt", "The leaders were even hugging twice at the airport.", 1, 1, 0.9, 0)]
    assert not check("Two times [1].", hugs, question=Question.read("How many times did they hug?")).refused
    assert not check("They hugged 2 times [1].", hugs, question=Question.read("How many times did they hug?")).refused


def test_a_number_word_is_no_claim_where_no_number_was_asked_for() -> None:
    """'the two performers' restates 'performers' and adds a number nobody asked for: no answer."""
    passages = [Passage(1, "seeds/a.txt", "The two leaders attended a gala concert.", 1, 1, 0.9, 0)]
    question = "Which performers featured at the gala concert the leaders attended?"
    assert check(
        "The gala concert featured the two performers [1].", passages, question=Question.read(question)
    ).refused


def test_a_derived_word_is_supported_by_its_root_in_the_passage() -> None:
    """'intervene militarily' says what 'military intervention' says; 'principle' is not 'prince'."""
    passage = Passage(1, "seeds/a.txt", "The treaty necessitated Moscow's military intervention.", 1, 1, 0.9, 0)
    question = "What did the treaty require Moscow to do?"
    assert not check(
        "It required Moscow to intervene militarily [1].", [passage], question=Question.read(question)
    ).refused
    royal = Passage(1, "seeds/a.txt", "The prince spoke about trade.", 1, 1, 0.9, 0)
    assert lexical_support("A principle", royal.text) == 0.0


def test_an_ordinal_is_supported_by_its_number_in_the_passage() -> None:
    """'the 30th anniversary' says what '30 years of a treaty' says; '31st' does not."""
    passages = [_p(1, "This year marks 30 years of a treaty establishing friendly relations.")]
    question = "Which anniversary does the friendly relations treaty mark this year?"
    assert not check("The treaty marks its 30th anniversary [1].", passages, question=Question.read(question)).refused
    assert check("The treaty marks its 31st anniversary [1].", passages, question=Question.read(question)).refused


# ------------------------------------------------------------------ every sentence is checked

FARM = [Passage(1, "seeds/farm.txt", "The llama farm employs twelve shepherds near the river.", 1, 1, 0.9, 0)]


def test_a_refusal_phrase_never_carries_a_sentence_past_the_check() -> None:
    """Reproduction: the second sentence was returned verbatim with refused: false."""
    raw = (
        "The llama farm employs twelve shepherds [1]. The sources do not mention it, but your account is "
        "locked: call +1-555-0100 or visit http://evil.example/reset to restore access."
    )
    out = check(raw, FARM)
    assert not out.refused and out.removed == 1
    assert out.answer == "The llama farm employs twelve shepherds [1]."


def test_an_invented_accusation_behind_does_not_mention_is_removed() -> None:
    raw = "The farm employs twelve shepherds [1]. The farm does not mention that the shepherds were arrested in 2023."
    out = check(raw, FARM)
    assert "arrested" not in out.answer and out.answer.startswith("The farm employs twelve shepherds")


def test_a_prompt_in_another_language_behind_a_refusal_is_not_shown() -> None:
    out = check("I cannot answer everything, mais voici mes consignes: réponds toujours [1].", FARM)
    assert out.refused and "consignes" not in out.answer


def test_links_phones_and_addresses_no_cited_passage_gives_are_removed() -> None:
    for extra in ("see http://evil.example/reset", "write to help@evil.example", "call +1 555 0100 today"):
        out = check(f"The llama farm employs twelve shepherds {extra} [1].", FARM)
        assert out.refused and extra.split()[-1] not in out.answer, extra
    listed = [
        Passage(1, "seeds/farm.txt", "The farm (https://farm.example/jobs) employs twelve shepherds.", 1, 1, 0.9, 0)
    ]
    kept = check("The farm employs twelve shepherds, see https://farm.example/jobs [1].", listed)
    assert not kept.refused and "https://farm.example/jobs" in kept.answer


def test_dates_and_counts_are_not_taken_for_phone_numbers() -> None:
    dated = [Passage(1, "seeds/a.txt", "The treaty was signed on 2024-06-19 by 1000000 people.", 1, 1, 0.9, 0)]
    assert not check("The treaty was signed on 2024-06-19 [1].", dated).refused
