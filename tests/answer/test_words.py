"""Words and their forms (service/answer/words.py): what makes a claim's word meet a passage's."""

from __future__ import annotations

import pytest

from service.answer.words import Rarity, all_forms, content_words, meets, stem, unseen_weight, word_forms


@pytest.mark.parametrize(
    ("word", "expected"),
    [("dogs", "dog"), ("gifted", "gift"), ("stories", "story"), ("feeding", "feed"), ("bus", "bus"), ("Kim's", "Kim")],
)
def test_stem_folds_common_suffixes_only_on_long_enough_words(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_content_words_drop_stopwords_and_stem_the_rest() -> None:
    assert content_words("The dogs were given to Putin by Kim") == ["dog", "given", "putin", "kim"]


def test_irregular_forms_meet_their_lemma() -> None:
    assert meets(word_forms("flew")["flew"], all_forms("They fly to Hanoi"))
    assert not meets(word_forms("flew")["flew"], all_forms("They drove to Hanoi"))


def test_numbers_meet_in_every_spelling_but_only_count_when_asked() -> None:
    assert "two" not in word_forms("the two leaders")  # a stopword for retrieval
    assert word_forms("hugged twice", numbers=True)["twice"] >= {"two", "2"}
    assert meets(word_forms("30th", numbers=True)["30th"], all_forms("30 years of the treaty"))


def test_a_derived_word_meets_its_root_but_a_lookalike_does_not() -> None:
    assert meets(word_forms("militarily")["militarily"], all_forms("military intervention"))
    assert not meets(word_forms("principle")["principle"], all_forms("The prince spoke"))


def test_rarity_weighs_unseen_words_as_the_rarest() -> None:
    rarity = Rarity({"putin": 0.1, "artist": 2.5})
    assert rarity.unseen == 2.5 == unseen_weight(rarity)
    assert unseen_weight({"a": 0.3, "b": 0.7}) == 0.7
    assert unseen_weight(None) == 1.0
