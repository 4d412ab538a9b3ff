"""The values the answer stages hand each other: the passages the model is shown and the checked
answer. Plain data, importing no index code, so the checks can be used and tested on their own."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REFUSAL = "I cannot answer that from the provided sources."


@dataclass
class Passage:
    number: int  # the n the LLM cites as [n]
    source: str
    text: str
    start_line: int
    end_line: int
    score: float  # best sentence cosine in the passage
    chunk_id: int
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32), repr=False)
    heading: str = ""  # the section's heading path (Markdown and HTML sources)
    anchor: str = ""  # the nearest element id in an HTML source
    page: int | None = None  # the 1-based page of a PDF source

    @property
    def labelled(self) -> str:
        """The passage as the LLM is shown it: under its heading path, which often names what a
        list item or table row is about ("createdb › Options: -T template ...")."""
        return f"{self.heading}: {self.text}" if self.heading else self.text


@dataclass
class Checked:
    answer: str
    cited: list[Passage]  # in id order: cited[0] is [1]
    refused: bool
    dropped: int  # markers removed or moved
    removed: int = 0  # answer sentences removed: unsupported by every passage, or echoing the prompt

    @classmethod
    def refusal(cls, dropped: int = 0, removed: int = 0) -> Checked:
        return cls(REFUSAL, [], True, dropped, removed)
