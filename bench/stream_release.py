"""What holding back prompt words costs the stream: time to first token with the release rule of
service/answer/streaming.py against a pass-through, in one run, on the embedded default model.

Loads the real answerer once, then answers each question twice (release rule, pass-through) in
alternating order, and prints time to first token p50/p95 for both and their ratio.

    python bench/stream_release.py [--questions 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class PassThrough:
    """The stream before the release rule: every piece shown as it comes."""

    def __init__(self, private: str) -> None:
        pass

    def feed(self, piece: str) -> str:
        return piece

    def flush(self) -> str:
        return ""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


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
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    print(f"CPU: {cpu}, {os.cpu_count()} cores; {settings.llm_model}; {len(questions)} answerable questions")
    real = pipeline.SentenceRelease
    times: dict[str, list[float]] = {"release rule": [], "pass-through": []}
    for n, q in enumerate(questions):
        order = [("release rule", real), ("pass-through", PassThrough)]
        for name, cls in order if n % 2 == 0 else order[::-1]:
            pipeline.SentenceRelease = cls  # type: ignore[misc,assignment]
            ttft, refused = asyncio.run(first_token(answerer, q))
            if not refused:
                times[name].append(ttft)
    pipeline.SentenceRelease = real  # type: ignore[misc]
    for name, values in times.items():
        print(
            f"{name}: time to first token p50 {pct(values, 50):.2f} s, "
            f"p95 {pct(values, 95):.2f} s ({len(values)} answers)"
        )
    ratio = pct(times["release rule"], 50) / pct(times["pass-through"], 50)
    print(f"ratio p50 release/pass-through: {ratio:.2f}")


if __name__ == "__main__":
    main()
