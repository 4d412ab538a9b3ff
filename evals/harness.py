"""Run the eval questions through citeqa and write the report.

In-process (default) it uses the real pipeline: the real embedder, the configured LLM (the
embedded default unless `CITEQA_LLM_MODEL` says otherwise) and an index of the corpus
(evals/corpora.py), kept in `.citeqa/eval-index/<corpus>` and updated like any index, so a
second run does not embed an unchanged corpus again. With a base URL it asks a live server over
HTTP instead, so a deployment is checked the same way. Nothing is recorded or replayed: every
answer comes from the system under test.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import time
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evals.corpora import CORPORA, ROOT, Corpus
from evals.metrics import RETRIEVAL_METRICS, Case, Outcome, answer_scores, failing_cases, retrieval_scores

HERE = Path(__file__).resolve().parent
THRESHOLDS = HERE / "thresholds.toml"
REPORT_DIR = HERE / "report"
INDEX_CACHE = ROOT / ".citeqa" / "eval-index"

__all__ = ["CORPORA", "ROOT", "Case", "Corpus", "InProcess", "OverHttp", "load_thresholds", "run", "write_report"]


def load_thresholds(tier: str, corpus: str = "seeds", path: Path = THRESHOLDS) -> dict[str, dict[str, float]]:
    return tomllib.loads(path.read_text())[corpus][tier]  # type: ignore[no-any-return]


def applicable(thresholds: dict[str, dict[str, float]], measures_retrieval: bool) -> dict[str, dict[str, float]]:
    """The bars a run can be held to: a live server (`--base-url`) shows no retrieval ranks or
    context, so its retrieval metrics are reported as n/a and not gated."""
    if measures_retrieval:
        return thresholds
    return {k: v for k, v in thresholds.items() if k not in RETRIEVAL_METRICS}


def below_target(agg: dict[str, float | None], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """Metrics that pass their gate but miss their `target` (the bar the project aims for)."""
    out = []
    for metric, bar in thresholds.items():
        value, target = agg.get(metric), bar.get("target")
        if target is None or value is None:
            continue
        if ("min" in bar and value < target) or ("max" in bar and value > target):
            out.append(f"{metric} = {value:.3f}, target {'>=' if 'min' in bar else '<='} {target}")
    return out


def gate(agg: dict[str, float | None], thresholds: dict[str, dict[str, float]], outcomes: list[Outcome]) -> list[str]:
    """Failure messages, one per metric on the wrong side of its bar, naming the questions."""
    failures = []
    for metric, bar in thresholds.items():
        value = agg.get(metric)
        low = "min" in bar and (value is None or value < bar["min"])
        high = "max" in bar and (value is None or value > bar["max"])
        if low or high:
            want = f">= {bar['min']}" if low else f"<= {bar['max']}"
            shown = "n/a" if value is None else f"{value:.3f}"
            cases = failing_cases(outcomes, metric)
            failures.append(f"{metric} = {shown}, wanted {want}; questions: {', '.join(cases) or '-'}")
    return failures


class InProcess:
    """The real pipeline over an index of one corpus (built, or brought up to date, on start)."""

    def __init__(self, corpus: Corpus, with_llm: bool, index_dir: Path | None = None) -> None:
        from index.builder import build
        from index.embedder import SentenceTransformerEmbedder
        from service.settings import Settings

        self.corpus = corpus
        self.settings = Settings(index_dir=index_dir or INDEX_CACHE / corpus.name, corpus_dir=corpus.docs)
        self.embedder = SentenceTransformerEmbedder(
            self.settings.embedding_model, query_backend=self.settings.query_encoder
        )
        started = time.perf_counter()
        if self.settings.vector_store == "milvus":  # CITEQA_VECTOR_STORE=milvus: a Milvus Lite file per corpus
            from index.milvus_build import build_milvus

            self.settings.milvus_uri = str(self.settings.index_dir.with_name(f"{corpus.name}-milvus.db"))
            build_milvus(
                self.settings.corpus_dir,
                self.settings.milvus_uri,
                self.embedder,
                self.settings.chunk_tokens,
                self.settings.chunk_overlap,
            )
        elif self.settings.vector_store == "pgvector":  # CITEQA_PGVECTOR_DSN: one set of tables per corpus
            from index.pgvector_build import build_pgvector
            from index.pgvector_store import PgvectorChunkStore

            self.settings.pgvector_table = "citeqa_eval_" + re.sub(r"[^a-z0-9_]", "_", corpus.name.lower())[:28]
            writer = PgvectorChunkStore(
                self.settings.pgvector_dsn,
                table=self.settings.pgvector_table,
                dim=self.embedder.dim,
                vector_index=self.settings.pgvector_index,
            )
            try:
                build_pgvector(
                    self.settings.corpus_dir,
                    self.settings.pgvector_dsn,
                    self.embedder,
                    self.settings.chunk_tokens,
                    self.settings.chunk_overlap,
                    store=writer,
                )
            finally:
                writer.close()
        else:
            build(
                self.settings.corpus_dir,
                self.settings.index_dir,
                self.embedder,
                self.settings.chunk_tokens,
                self.settings.chunk_overlap,
            )
        self.index_seconds = time.perf_counter() - started
        self.with_llm = with_llm
        self.answerer: Any = None
        if with_llm:
            from service.answer.loading import load_answerer
            from service.llm.queue import LLMGate

            self.answerer = load_answerer(self.settings, LLMGate(1, 1000))
            self.retriever, self.sentences = self.answerer.retriever, self.answerer.sentences
        else:
            from service.answer.loading import open_retriever
            from service.answer.sentence_vectors import SentenceVectors

            self.retriever = open_retriever(self.settings, self.embedder)
            self.sentences = SentenceVectors(self.embedder.encode_documents)

    def run(self, case: Case) -> Outcome:
        from service.answer.context import Budget, gather_context
        from service.answer.question import Question
        from service.schemas import AskRequest

        s = self.settings
        passages = gather_context(
            self.sentences, self.retriever, Question.read(case.question), s.top_k, Budget.from_settings(s)
        )
        outcome = Outcome(
            case,
            retrieved_sources=[h.chunk.source for h in self.retriever.retrieve(case.question, s.top_k).hits],
            context="\n".join(p.labelled for p in passages),  # as the LLM is shown them
        )
        if not self.with_llm:
            return outcome
        try:
            done = asyncio.run(self.answerer.ask(AskRequest(question=case.question)))
        except Exception as exc:  # recorded per question; the gate reports it
            outcome.error = f"{type(exc).__name__}: {exc}"
            return outcome
        r = done.response
        outcome.answer, outcome.refused = r.answer, r.refused
        outcome.model_output = done.raw
        if done.second_look:
            outcome.second_look = done.second_look.outcome
            outcome.refusal_p = done.second_look.refusal_p
        outcome.citations = [c.model_dump() for c in r.citations]
        outcome.timings_ms = r.timings_ms.model_dump()
        return outcome


class OverHttp:
    """A live server: only what /ask returns is scored (no retrieval ranks)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.with_llm = True
        self.index_seconds = 0.0

    def run(self, case: Case) -> Outcome:
        outcome = Outcome(case)
        try:
            r = self.client.post("/ask", json={"question": case.question})
            body = r.json()
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            return outcome
        if r.status_code != 200:
            outcome.error = f"HTTP {r.status_code}: {body.get('error', {}).get('code')}"
            return outcome
        outcome.answer, outcome.refused = body["answer"], body["refused"]
        outcome.citations, outcome.timings_ms = body["citations"], body["timings_ms"]
        return outcome


def judge(outcomes: list[Outcome], model: str) -> None:
    """Optional LLM-as-judge faithfulness (only when CITEQA_JUDGE_MODEL names a model)."""
    from service.llm.client import LiteLLMClient, complete
    from service.settings import Settings

    client = LiteLLMClient(Settings(llm_model=model, llm_max_tokens=5))
    for o in outcomes:
        if not o.answer or o.refused:
            continue
        passages = "\n".join(f"[{c['id']}] {c['text']}" for c in o.citations)
        prompt = (
            f"Passages:\n{passages}\n\nAnswer: {o.answer}\n\n"
            "Is every claim in the answer supported by the passages? Reply yes or no."
        )
        reply = asyncio.run(complete(client, [{"role": "user", "content": prompt}]))
        o.judge["faithfulness"] = 1.0 if reply.strip().lower().startswith("yes") else 0.0


def run(runner: InProcess | OverHttp, cases: list[Case], progress: bool = True) -> list[Outcome]:
    """Every case in turn, printing a line per answered question to stderr."""
    outcomes = []
    for n, case in enumerate(cases, start=1):
        started = time.perf_counter()
        outcome = runner.run(case)
        outcomes.append(outcome)
        if progress and runner.with_llm:
            state = "error" if outcome.error else "refused" if outcome.refused else "answered"
            print(
                f"  [{n}/{len(cases)}] {case.id}: {state} in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return outcomes


def write_report(
    tier: str,
    agg: dict[str, float | None],
    thresholds: dict[str, dict[str, float]],
    outcomes: list[Outcome],
    seconds: float,
    model: str,
    report_dir: Path = REPORT_DIR,
    corpus: str = "",
) -> Path:
    """latest.json and latest.md; the previous run's aggregates are kept beside them."""
    report_dir.mkdir(parents=True, exist_ok=True)
    latest = report_dir / "latest.json"
    previous: dict[str, Any] = {}
    if latest.exists():
        try:
            old = json.loads(latest.read_text())
            previous = old.get("aggregates", {})
            shutil.copyfile(latest, report_dir / "previous.json")
        except (ValueError, OSError):
            previous = {}
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {
            "id": o.case.id,
            "category": o.case.category,
            "question": o.case.question,
            "answerable": o.case.answerable,
            "answer": o.answer,
            "model_output": o.model_output,
            "second_look": o.second_look,
            "refusal_p": None if o.refusal_p is None else round(o.refusal_p, 4),
            "refused": o.refused,
            "citations": [{k: c[k] for k in ("id", "source", "start_line", "end_line")} for c in o.citations],
            "gold_sources": o.case.gold_sources,
            "timings_ms": o.timings_ms,
            "error": o.error,
        }
        row["scores"] = {
            **(retrieval_scores(o) if o.case.answerable and o.retrieved_sources else {}),
            **(answer_scores(o) if o.answer is not None or o.error else {}),
        }
        rows.append(row)
    failures = gate(agg, thresholds, outcomes)
    short = below_target(agg, thresholds)
    payload = {
        "tier": tier,
        "corpus": corpus,
        "model": model,
        "seconds": round(seconds, 1),
        "aggregates": agg,
        "thresholds": thresholds,
        "previous_aggregates": previous,
        "failures": failures,
        "below_target": short,
        "questions": rows,
    }
    tmp = latest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    tmp.replace(latest)
    (report_dir / "latest.md").write_text(_markdown(payload))
    return latest


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _markdown(p: dict[str, Any]) -> str:
    lines = [
        f"# citeqa eval report ({p['tier']} tier{', ' + p['corpus'] if p.get('corpus') else ''})",
        "",
        f"Model: `{p['model']}`; {len(p['questions'])} questions in {p['seconds']} s.",
        "",
        "| metric | value | previous | gate | pass | target |",
        "|---|---|---|---|---|---|",
    ]
    for metric, value in p["aggregates"].items():
        bar = p["thresholds"].get(metric)
        bar_text = "" if not bar else (f">= {bar['min']}" if "min" in bar else f"<= {bar['max']}")
        ok = "" if not bar else ("FAIL" if any(f.startswith(metric + " ") for f in p["failures"]) else "ok")
        target = ""
        if bar and "target" in bar:
            missed = any(f.startswith(metric + " ") for f in p["below_target"])
            target = f"{bar['target']}" + (" (missed)" if missed else "")
        lines.append(
            f"| {metric} | {_fmt(value)} | {_fmt(p['previous_aggregates'].get(metric))} | {bar_text} | {ok} "
            f"| {target} |"
        )
    lines += ["", "| id | category | answer | citations | scores |", "|---|---|---|---|---|"]
    for q in p["questions"]:
        answer = (q["error"] or ("(refused) " if q["refused"] else "") + (q["answer"] or ""))[:160]
        wrote = q.get("model_output")
        if wrote and wrote.strip() != (q["answer"] or "").strip():  # the citation check changed it
            answer += f" (model wrote: {wrote.strip()[:160]})"
        if q.get("second_look") == "vetoed":
            answer += " (vetoed on the second look)"
        answer = answer.replace("|", "/").replace("\n", " ")
        cites = ", ".join(
            f"[{c['id']}] {c['source'].split('/')[-1]}:{c['start_line']}-{c['end_line']}" for c in q["citations"]
        )
        scores = ", ".join(f"{k}={_fmt(v)}" for k, v in q["scores"].items() if v is not None)
        lines.append(f"| {q['id']} | {q['category']} | {answer} | {cites} | {scores} |")
    return "\n".join(lines) + "\n"


def save_outcomes(outcomes: list[Outcome], path: Path) -> None:
    path.write_text(json.dumps([asdict(o) for o in outcomes], indent=2, ensure_ascii=False, default=str))


SUMMARY_METRICS = (
    "key_fact_accuracy",
    "refusal_accuracy",
    "false_refusal_rate",
    "citation_precision",
    "context_recall",
    "hit_at_5",
)


def write_summary(report_dir: Path = REPORT_DIR) -> Path:
    """summary.md and summary.json: every corpus's main and held-out figures side by side, and the
    gap between them (main minus held-out), from the reports in `report_dir/<corpus>/`."""
    table: dict[str, dict[str, Any]] = {}
    for name in CORPORA:
        entry: dict[str, Any] = {}
        for split, path in (
            ("main", report_dir / name / "latest.json"),
            ("heldout", report_dir / name / "heldout" / "latest.json"),
        ):
            if path.exists():
                report = json.loads(path.read_text())
                entry[split] = {"questions": len(report["questions"]), "aggregates": report["aggregates"]}
                entry[split]["failures"] = report.get("failures", [])
        if "main" in entry and "heldout" in entry:
            main, held = entry["main"]["aggregates"], entry["heldout"]["aggregates"]
            entry["gap"] = {
                m: round(main[m] - held[m], 3)
                for m in SUMMARY_METRICS
                if main.get(m) is not None and held.get(m) is not None
            }
        if entry:
            table[name] = entry
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "summary.json").write_text(json.dumps(table, indent=2))
    lines = ["# citeqa evals: every corpus", "", "| corpus | split | questions | " + " | ".join(SUMMARY_METRICS) + " |"]
    lines.append("|---|---|---|" + "---|" * len(SUMMARY_METRICS))
    for name, entry in table.items():
        for split in ("main", "heldout"):
            if split in entry:
                agg = entry[split]["aggregates"]
                cells = " | ".join(_fmt(agg.get(m)) for m in SUMMARY_METRICS)
                lines.append(f"| {name} | {split} | {entry[split]['questions']} | {cells} |")
        if "gap" in entry:
            cells = " | ".join(_fmt(entry["gap"].get(m)) for m in SUMMARY_METRICS)
            lines.append(f"| {name} | gap (main - held-out) | | {cells} |")
    path = report_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
