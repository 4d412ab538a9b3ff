"""What holding back prompt words costs the stream: time to first token with the release rule of
service/answer/streaming.py, with the rule it replaced (hold on any word of the system prompt), and
with a pass-through, in one run, on the embedded default model.

Loads the real answerer once, then answers each question once per variant, rotating their order,
and prints time to first token p50/p95 for each and the ratios to the pass-through.

    python bench/stream_release.py [--questions 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from machine import cpu_model, pct  # noqa: E402  (bench/machine.py)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class PassThrough:
    """The stream before the release rule: every piece shown as it comes."""

    def __init__(self, private: str, public: str = "") -> None:
        pass

    def feed(self, piece: str) -> str:
        return piece

    def flush(self) -> str:
        return ""


async def first_token(answerer: object, question: str) -> tuple[float, bool]:
    from service.answer.pipeline import Done, Token
    from service.schemas import AskRequest

    started = time.perf_counter()
    first = None
    refused = True
    async for event in answerer.stream(AskRequest(question=question)):  # type: ignore[attr-defined]
        if isinstance(event, Token) and first is None:
            first = time.perf_counter() - started
        if isinstance(event, Done):
            refused = event.response.refused
            if first is None:
                first = time.perf_counter() - started
    return first or 0.0, refused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=12)
    args = parser.parse_args()
    from service.answer import pipeline
    from service.answer.loading import load_answerer
    from service.llm.queue import LLMGate
    from service.settings import Settings

    cases = [json.loads(line) for line in (ROOT / "evals/data/qa.jsonl").read_text().splitlines() if line.strip()]
    questions = [c["question"] for c in cases if c.get("answerable", True)][: args.questions]
    settings = Settings()
    answerer = load_answerer(settings, LLMGate(1, 10))
    cpu = cpu_model()
    print(f"CPU: {cpu}, {os.cpu_count()} cores; {settings.llm_model}; {len(questions)} answerable questions")
    real = pipeline.SentenceRelease

    def any_prompt_word(private: str, public: str = "") -> object:
        return real(private)  # the earlier rule: a prompt word holds the sentence even if public

    variants = {"release rule": real, "any prompt word": any_prompt_word, "pass-through": PassThrough}
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for n, q in enumerate(questions):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            pipeline.SentenceRelease = variants[name]  # type: ignore[misc,assignment]
            ttft, refused = asyncio.run(first_token(answerer, q))
            if not refused:
                times[name].append(ttft)
    pipeline.SentenceRelease = real  # type: ignore[misc]
    base = times["pass-through"]
    for name, values in times.items():
        print(
            f"{name}: time to first token p50 {pct(values, 50):.2f} s, p95 {pct(values, 95):.2f} s "
            f"({len(values)} answers); ratio to pass-through p50 {pct(values, 50) / pct(base, 50):.2f}, "
            f"p95 {pct(values, 95) / pct(base, 95):.2f}"
        )


if __name__ == "__main__":
    main()
