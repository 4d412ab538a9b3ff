"""Look inside a few eval questions (main or held-out set): the passages sent, the model's raw reply,
its reply on the second look, and the checked answer.

    python -m evals.probe dog-breed limo-colour      # by id (any split of the corpus)
    python -m evals.probe --failing                  # the questions that failed in the last report
    python -m evals.probe --corpus postgresql pg-createdb-template

Uses the same in-process pipeline as `pytest evals/` (real embedder, configured LLM).
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from evals import harness
    from evals.metrics import answer_scores
    from service.answer.question import Question

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*")
    parser.add_argument("--failing", action="store_true", help="questions that failed in the corpus's last report")
    parser.add_argument("--corpus", default="seeds", choices=list(harness.CORPORA))
    args = parser.parse_args(argv)

    corpus = harness.CORPORA[args.corpus]
    cases = {c.id: c for c in corpus.load() + corpus.load("heldout")}
    ids = list(args.ids)
    if args.failing:
        report = json.loads((harness.REPORT_DIR / corpus.name / "latest.json").read_text())
        ids += [
            q["id"]
            for q in report["questions"]
            if any(
                v is not None and v < 1.0
                for k, v in q["scores"].items()
                if k in {"key_facts", "correct_refusal", "citation_precision"}
            )
        ]
    unknown = [i for i in ids if i not in cases]
    if unknown:
        print(f"unknown ids: {', '.join(unknown)}", file=sys.stderr)
        return 2

    runner = harness.InProcess(corpus, with_llm=True)
    answerer = runner.answerer
    raw: list[str] = []
    original = answerer.llm.stream

    async def recording(messages, **kw):  # type: ignore[no-untyped-def]
        text = ""
        async for piece in original(messages, **kw):
            text += piece
            yield piece
        raw.append(text)

    answerer.llm.stream = recording
    for case_id in ids:
        case = cases[case_id]
        raw.clear()
        passages = answerer.passages_for(Question.read(case.question), runner.settings.top_k)
        outcome = runner.run(case)
        print(f"=== {case.id} ({'answerable' if case.answerable else 'UNANSWERABLE'}): {case.question}")
        print(f"reference: {case.reference}")
        for p in passages:
            print(f"  [{p.number}] ({p.score:.2f} {p.source.split('/')[-1]}:{p.start_line}) {p.text}")
        print(f"raw: {raw[0] if raw else '(no LLM call)'}")
        if len(raw) > 1:
            print(f"second look (service/answer/second_look.py): {raw[1]}")
        print(f"out: {'(refused) ' if outcome.refused else ''}{outcome.answer or outcome.error}")
        print(f"cited: {[c['source'].split('/')[-1] for c in outcome.citations]}  gold: {case.gold_sources}")
        print(f"scores: {answer_scores(outcome)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
