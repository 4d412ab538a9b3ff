"""Eval fixtures: one run of the system per session, shared by the gate tests.

Fast tier (default in `make test`): retrieval with the real embedder, no LLM.
Full tier (`pytest evals/`, marked `full`): the whole pipeline with the configured LLM, or a live
server with `--base-url`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--base-url", default=None, help="evaluate a live citeqa server instead of in-process")
    parser.addoption("--api-key", default=os.environ.get("CITEQA_EVAL_API_KEY"), help="bearer key for --base-url")
    parser.addoption("--report-dir", default=None, help="where to write latest.json/latest.md")


class Run:
    def __init__(  # type: ignore[no-untyped-def]
        self, tier: str, outcomes: list, seconds: float, model: str, index_seconds: float, in_process: bool = True
    ) -> None:
        self.tier, self.outcomes, self.seconds, self.model = tier, outcomes, seconds, model
        self.index_seconds = index_seconds
        self.in_process = in_process  # False over --base-url: no retrieval ranks or context to score


def _execute(config: pytest.Config, tmp: Path, tier: str) -> Run:
    from evals import harness

    cases = harness.load_cases()
    started = time.perf_counter()
    base_url = config.getoption("--base-url")
    if base_url and tier == "full":
        runner: harness.InProcess | harness.OverHttp = harness.OverHttp(base_url, config.getoption("--api-key"))
        model = base_url
    else:
        runner = harness.InProcess(tmp, with_llm=tier == "full")
        model = runner.settings.llm_model if tier == "full" else runner.settings.embedding_model
    # Show per-question progress past pytest's output capture: a full run takes minutes.
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        outcomes = harness.run(runner, cases)
    if tier == "full" and os.environ.get("CITEQA_JUDGE_MODEL"):
        harness.judge(outcomes, os.environ["CITEQA_JUDGE_MODEL"])
    in_process = isinstance(runner, harness.InProcess)
    return Run(tier, outcomes, time.perf_counter() - started, model, runner.index_seconds, in_process)


@pytest.fixture(scope="session")
def fast_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _execute(request.config, tmp_path_factory.mktemp("eval-fast"), "fast")


@pytest.fixture(scope="session")
def full_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _execute(request.config, tmp_path_factory.mktemp("eval-full"), "full")


@pytest.fixture(scope="session")
def report_dir(request: pytest.FixtureRequest) -> Path:
    from evals.harness import REPORT_DIR

    given = request.config.getoption("--report-dir")
    return Path(given) if given else REPORT_DIR
