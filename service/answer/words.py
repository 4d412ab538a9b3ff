"""Words and their forms, shared by lexical retrieval, context selection and the answer checks.

A word meets another when they share a stem, a dictionary lemma ("flew" and "fly"), a number
("twice" and "two") or a root ("militarily" and "military"); `Rarity` weighs words by how rare
they are in the corpus."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from lemminflect import getAllLemmas

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself tell said says say according get got one two""".split()  # noqa: SIM905
)


def stem(word: str) -> str:
    """Crude suffix folding: enough for 'dogs'/'dog', 'gifted'/'gift', without a stemmer dependency."""
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, min_len in (("ies", 5), ("ing", 6), ("ed", 6), ("es", 5), ("s", 4)):
        if word.endswith(suffix) and len(word) >= min_len:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


_NUMBER_WORDS = frozenset({"one", "two"})  # stopwords for retrieval, but an answer's claim to "how many"
NUMERALS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
# "twice" says "two", "2" says "two": every spelling of a small number meets the others.
_NUMBER_FORMS = {word: {word, str(n)} for n, word in enumerate(NUMERALS, start=1)}
_NUMBER_FORMS |= {str(n): {word, str(n)} for n, word in enumerate(NUMERALS, start=1)}
_NUMBER_FORMS |= {"twice": {"two", "2"}, "thrice": {"three", "3"}, "pair": {"pair", "two", "2"}}
_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)")  # "30th" says "30"


@lru_cache(maxsize=4096)
def _forms(word: str) -> frozenset[str]:
    """A word's stem plus the stems of its dictionary lemmas: 'flew' -> {'flew', 'fly'},
    'stroked' -> {'strok', 'stroke'}; irregular forms meet their base form, 'twice' meets 'two'."""
    forms = {stem(word)} | _NUMBER_FORMS.get(word, set())
    if ordinal := _ORDINAL.fullmatch(word):  # "the 30th anniversary" meets "30 years"
        forms.add(ordinal[1])
    for lemmas in getAllLemmas(word).values():
        forms.update(stem(lemma.lower()) for lemma in lemmas)
    return frozenset(forms)


@lru_cache(maxsize=2048)
def word_forms(text: str, numbers: bool = False) -> dict[str, frozenset[str]]:
    """Each content word of a text (as `content_words` gives it) with all its forms; with
    `numbers`, "one" and "two" count too (in the answer to "how many", "two" is the claim)."""
    out: dict[str, set[str]] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS or (numbers and word in _NUMBER_WORDS):
            out.setdefault(stem(word), set()).update(_forms(word))
    return {w: frozenset(f) for w, f in out.items()}


ROOT_PREFIX = 6  # letters a word and its derivative share at least ("interven-e", "interven-tion")
ROOT_SHARE = 0.8  # ... and as a share of the shorter word, so "prince" does not meet "principle"


def _same_root(a: str, b: str) -> bool:
    shorter = min(len(a), len(b))
    if shorter < ROOT_PREFIX or a[:ROOT_PREFIX] != b[:ROOT_PREFIX]:
        return False
    common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), shorter)
    return common >= ROOT_SHARE * shorter


def meets(forms: frozenset[str], present: frozenset[str]) -> bool:
    """True when one of a word's forms is in `present`, or shares its root with a word there:
    lemmas join "flew" to "fly", the root joins "militarily" to "military"."""
    return bool(forms & present) or any(_same_root(f, p) for f in forms for p in present)


@lru_cache(maxsize=2048)
def all_forms(text: str) -> frozenset[str]:
    """Every form of every content word of a text, number words included."""
    return frozenset().union(*word_forms(text, numbers=True).values())


@lru_cache(maxsize=2048)
def word_set(text: str) -> frozenset[str]:
    """The content words of a text, cached: passages and the system prompt are checked against
    every sentence of an answer."""
    return frozenset(content_words(text))


class Rarity(dict[str, float]):
    """Inverse document frequency per word, plus the weight of a word the corpus never uses (the
    highest weight), computed once rather than on every lookup."""

    def __init__(self, idf: Mapping[str, float]) -> None:
        super().__init__(idf)
        self.unseen = max(self.values(), default=1.0)


def unseen_weight(idf: Mapping[str, float] | None) -> float:
    """The weight of a word absent from `idf`: the corpus's highest, or 1.0 with no idf."""
    if not idf:
        return 1.0
    return idf.unseen if isinstance(idf, Rarity) else max(idf.values(), default=1.0)
