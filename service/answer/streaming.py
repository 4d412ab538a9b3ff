"""What the stream may show while the answer is still being written.

The final check removes a sentence that reproduces the system prompt, and a sentence that carries a
refusal phrase; a stream that passed the model's text straight through showed such a sentence
before the check took it back (the widget displayed "system: You answer questions using only..."
for seconds). Holding every sentence until it ends would make the widget feel dead, so words flow
as they come until a sentence uses a word only the system prompt holds, or a refusal phrase; from
there the rest of that sentence is held until it ends, then shown only if the check would keep it on
those grounds.

"Only the system prompt": a prompt word that also occurs in the passages or the question is not a
secret (the client asked it, or can read it in the cited sources), and answers use such words all
the time ("answer", "street", "owner"); holding on them held whole first sentences and cost the
stream's p95 time to first token. So no word the client could not already see is streamed in a
sentence the check removes.
"""

from __future__ import annotations

import re

from index.sentences import split_answer
from service.answer.citations import echoes, is_refusal, split_markers
from service.answer.words import content_words, word_set

_WORD = re.compile(r"\S+\s+")  # a word is complete once whitespace follows it


class SentenceRelease:
    def __init__(self, private: str, public: str = "") -> None:
        self.private_words = word_set(private)  # what the final check judges an echo by
        self.hold_words = self.private_words - word_set(public)  # what makes a sentence held
        self.text = ""  # everything the model wrote so far
        self.start = 0  # where the current sentence starts in `text`
        self.shown = 0  # how much of `text` has been released
        self.holding = False  # the current sentence is held until it ends

    def feed(self, piece: str) -> str:
        """Take the next piece of the model's text; return what may be shown now ("" if none)."""
        self.text += piece
        out = ""
        current = self.text[self.start :]
        sentences = split_answer(current)
        if len(sentences) >= 2:  # one or more sentences ended: judge the held ones whole
            boundary = self.start + current.rfind(sentences[-1])
            out += self._close(boundary)
        if not self.holding:
            for word in _WORD.finditer(self.text, self.shown):
                so_far = self.text[self.start : word.end()]
                if self._private(word.group(0)) or is_refusal(so_far):
                    self.holding = True
                    break
                out += word.group(0)
                self.shown = word.end()
        return out

    def flush(self) -> str:
        """The rest, once the model has finished."""
        return self._close(len(self.text))

    def _close(self, end: int) -> str:
        """End the current sentence at `end`: release its unshown rest unless it must not be seen."""
        sentence = self.text[self.start : end]
        rest = self.text[self.shown : end]
        bare, _ = split_markers(sentence.strip())
        blocked = self.holding and (is_refusal(bare) or bool(self.private_words and echoes(bare, self.private_words)))
        self.start = self.shown = end
        self.holding = False
        return "" if blocked else rest

    def _private(self, word: str) -> bool:
        return bool(self.hold_words) and any(w in self.hold_words for w in content_words(word))
