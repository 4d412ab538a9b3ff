"""The PDF page of each passage, read from the chunks retrieval returned.

Passages are made in context.py, which knows the chunk's heading and anchor; the page is looked
up here, by chunk id, from the hits the retriever handed over, so that module needs no change to
cite a PDF by page. `PageRecorder` is a Retriever that passes every call through and remembers
each hit's page.
"""

from __future__ import annotations

from service.answer.retrieval import Retrieval, Retriever
from service.answer.types import Passage
from service.answer.words import Rarity


class PageRecorder:
    """Wraps a Retriever for one question; `fill` sets each passage's page from its chunk."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.pages: dict[int, int | None] = {}

    @property
    def rarity(self) -> Rarity:
        return self.retriever.rarity

    @property
    def n_chunks(self) -> int:
        return self.retriever.n_chunks

    @property
    def version(self) -> str:
        return self.retriever.version

    def retrieve(self, question: str, top_k: int) -> Retrieval:
        found = self.retriever.retrieve(question, top_k)
        for hit in found.hits:
            self.pages[hit.chunk_id] = getattr(hit.chunk, "page", None)
        return found

    def fill(self, passages: list[Passage]) -> list[Passage]:
        for passage in passages:
            if passage.page is None:  # context.py may come to set it itself
                passage.page = self.pages.get(passage.chunk_id)
        return passages
