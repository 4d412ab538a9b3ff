"""Eval fixtures: one run of the system per corpus, tier and split per session.

Fast tier (default in `make test`): retrieval with the real embedder, no LLM.
Full tier (`pytest evals/`, marked `full`): the whole pipeline with the configured LLM, or a live
server with `--base-url` (one corpus: the one the server was indexed on, `--corpus`).
Every test that takes `corpus` runs once per corpus in evals/corpora.py (or those `--corpus` names).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--base-url", default=None, help="evaluate a live citeqa server instead of in-process")
    parser.addoption("--api-key", default=os.environ.get("CITEQA_EVAL_API_KEY"), help="bearer key for --base-url")
    parser.addoption("--report-dir", default=None, help="where to write the reports (default evals/report)")
    parser.addoption(
        "--corpus", action="append", default=None, help="run only this corpus (repeatable; default: every corpus)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "corpus" in metafunc.fixturenames:
        from evals.corpora import CORPORA

        names = metafunc.config.getoption("--corpus") or list(CORPORA)
        unknown = [n for n in names if n not in CORPORA]
        if unknown:
            raise pytest.UsageError(f"unknown corpus {', '.join(unknown)}; known: {', '.join(CORPORA)}")
        metafunc.parametrize("corpus", [CORPORA[n] for n in names], ids=names)


class Run:
    def __init__(  # type: ignore[no-untyped-def]
        self, tier: str, outcomes: list, seconds: float, model: str, index_seconds: float, in_process: bool = True
    ) -> None:
        self.tier, self.outcomes, self.seconds, self.model = tier, outcomes, seconds, model
        self.index_seconds = index_seconds
        self.in_process = in_process  # False over --base-url: no retrieval ranks or context to score


class Runs:
    """Runs on demand, each once per session; the in-process runner of a corpus is shared by its
    splits (one index, one model load) and dropped when another corpus's is needed."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.done: dict[tuple[str, str, str], Run] = {}
        self.runner: Any = None
        self.runner_key: tuple[str, bool] | None = None

    def get(self, corpus: Any, tier: str, split: str = "main") -> Run:
        key = (corpus.name, tier, split)
        if key not in self.done:
            self.done[key] = self._execute(corpus, tier, split)
        return self.done[key]

    def _runner(self, corpus: Any, with_llm: bool) -> Any:
        from evals import harness

        if self.runner_key != (corpus.name, with_llm):
            self.runner = None  # free the previous corpus's model before loading the next
            self.runner = harness.InProcess(corpus, with_llm=with_llm)
            self.runner_key = (corpus.name, with_llm)
        return self.runner

    def _execute(self, corpus: Any, tier: str, split: str) -> Run:
        from evals import harness

        cases = corpus.load(split)
        started = time.perf_counter()
        base_url = self.config.getoption("--base-url")
        if base_url and tier == "full":
            runner: Any = harness.OverHttp(base_url, self.config.getoption("--api-key"))
            model = base_url
        else:
            runner = self._runner(corpus, with_llm=tier == "full")
            model = runner.settings.llm_model if tier == "full" else runner.settings.embedding_model
        # Show per-question progress past pytest's output capture: a full run takes minutes.
        capture = self.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if tier == "full":
                print(f"\n{corpus.name}, {split} split: {len(cases)} questions", flush=True)
            outcomes = harness.run(runner, cases)
        if tier == "full" and os.environ.get("CITEQA_JUDGE_MODEL"):
            harness.judge(outcomes, os.environ["CITEQA_JUDGE_MODEL"])
        in_process = isinstance(runner, harness.InProcess)
        return Run(tier, outcomes, time.perf_counter() - started, model, runner.index_seconds, in_process)


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest) -> Runs:
    return Runs(request.config)


@pytest.fixture(scope="session")
def report_dir(request: pytest.FixtureRequest) -> Path:
    from evals.harness import REPORT_DIR

    given = request.config.getoption("--report-dir")
    return Path(given) if given else REPORT_DIR
