"""docker-compose.yml, checked with Debian's `docker-compose config` (no Docker engine needed).

The compose file, the Dockerfile and .env.example are copied into a temporary folder, as in a clean
clone (no .env), and `docker-compose config` must accept them; the assertions read its rendered
YAML. A second run adds a .env copied from .env.example, as the compose file's header says to, and
switches to a hosted LLM by editing it: an env change only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose") or (
    "/usr/bin/docker-compose" if Path("/usr/bin/docker-compose").exists() else None
)
pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (Debian: apt-get install -y docker-compose)"
)
FILES = ("docker-compose.yml", "Dockerfile", ".env.example", ".dockerignore")


def _clone(tmp: Path) -> Path:
    for name in FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, tmp / name)
    return tmp


def _config(project: Path, *options: str) -> dict[str, Any]:
    """Run `docker-compose [options] config` in `project` with none of the caller's compose/citeqa
    variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITEQA_", "COMPOSE_", "LLM_", "DOCKER_"))}
    assert COMPOSE is not None  # the module is skipped without it
    proc = subprocess.run(
        [COMPOSE, "-f", "docker-compose.yml", *options, "config"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stderr}"
    assert "Couldn't find env file" not in proc.stderr, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = _clone(tmp_path_factory.mktemp("clean-clone"))
    assert not (project / ".env").exists()
    return _config(project)


@pytest.fixture(scope="module")
def dockerfile_stages() -> dict[str, str]:
    """Dockerfile text per `FROM ... AS <name>` stage."""
    stages: dict[str, str] = {}
    name = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            name = match.group(1)
            stages[name] = ""
        if name:
            stages[name] += line + "\n"
    return stages


def _healthcheck_urls(service: dict[str, Any]) -> list[str]:
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), "healthcheck disabled"
    test = check.get("test")
    text = " ".join(test) if isinstance(test, list) else str(test or "")
    return re.findall(r"https?://[^\s'\"]+", text)


def _volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume, from the short ("index:/data:rw") or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts.append((source, target))
    return mounts


def _port(stage: str, flag: str) -> str:
    match = re.search(rf"{flag}\s+(\d+)", stage)
    assert match, f"no {flag} in the Dockerfile stage"
    return match.group(1)


def test_clean_clone_is_accepted_and_defines_api_and_llm(clean: dict[str, Any]) -> None:
    assert {"api", "llm"} <= set(clean["services"])


def test_api_has_a_healthcheck_on_health(clean: dict[str, Any], dockerfile_stages: dict[str, str]) -> None:
    api = clean["services"]["api"]
    assert api["build"]["target"] == "api"
    urls = _healthcheck_urls(api)
    assert urls, f"api healthcheck calls no URL: {api.get('healthcheck')}"
    url = urlsplit(urls[0])
    assert url.path == "/health"
    assert url.hostname in {"127.0.0.1", "localhost"}
    assert str(url.port) == api["environment"].get("CITEQA_PORT", "8000") == "8000"
    assert str(url.port) == _port(dockerfile_stages["api"], "EXPOSE")
    assert any(str(p["target"]) == "8000" for p in api.get("ports", []))
    for key in ("interval", "timeout", "retries"):
        assert api["healthcheck"].get(key), f"api healthcheck has no {key}"


def test_api_keeps_its_index_in_a_named_volume(clean: dict[str, Any]) -> None:
    api = clean["services"]["api"]
    assert "index" in (clean.get("volumes") or {})
    targets = [target for source, target in _volume_mounts(api) if source == "index"]
    assert targets, f"the api does not mount the index volume: {api.get('volumes')}"
    index_dir = api["environment"]["CITEQA_INDEX_DIR"]
    assert any(index_dir == t or index_dir.startswith(t.rstrip("/") + "/") for t in targets), (
        f"CITEQA_INDEX_DIR={index_dir} is not inside the index volume ({targets})"
    )


def test_api_reads_a_settings_file_that_exists_in_a_clean_clone(clean: dict[str, Any]) -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env_file = raw["services"]["api"].get("env_file")
    assert env_file, "the api service has no env_file"
    first = env_file if isinstance(env_file, str) else env_file[0]
    default = re.sub(r"\$\{[A-Z_]+:?-([^}]*)\}", r"\1", first)  # ${CITEQA_ENV_FILE:-x} -> x
    assert (ROOT / default).is_file(), f"env_file defaults to {default}, which a clean clone lacks"
    # `config` inlines the file: settings only .env.example sets reach the api's environment.
    environment = clean["services"]["api"]["environment"]
    for key in ("CITEQA_RATE_LIMIT", "CITEQA_API_KEYS", "CITEQA_LLM_QUEUE_SIZE"):
        assert key in environment, f"{key} from the env file is missing from the api's environment"


def test_llm_is_a_llama_cpp_openai_server_with_a_healthcheck(
    clean: dict[str, Any], dockerfile_stages: dict[str, str]
) -> None:
    llm = clean["services"]["llm"]
    assert llm["build"]["target"] == "llm"
    stage = dockerfile_stages["llm"]
    assert "llama_cpp.server" in stage, "the llm image does not run llama.cpp's OpenAI-compatible server"
    port = _port(stage, "--port")
    assert port in {str(p) for p in llm.get("expose", [])}
    urls = _healthcheck_urls(llm)
    assert urls, f"llm healthcheck calls no URL: {llm.get('healthcheck')}"
    url = urlsplit(urls[0])
    assert url.path.startswith("/v1/") and str(url.port) == port


def test_api_reaches_the_llm_service_through_litellm_openai(
    clean: dict[str, Any], dockerfile_stages: dict[str, str]
) -> None:
    environment = clean["services"]["api"]["environment"]
    model = environment["CITEQA_LLM_MODEL"]
    assert model.startswith("openai/"), model
    alias = re.search(r"LLM_MODEL_ALIAS=(\S+)", dockerfile_stages["llm"])
    assert alias and model == f"openai/{alias.group(1)}", "model name differs from the server's alias"
    base = urlsplit(environment["CITEQA_LLM_API_BASE"])
    assert base.scheme == "http" and base.hostname == "llm" and base.path.rstrip("/") == "/v1"
    assert str(base.port) in {str(p) for p in clean["services"]["llm"].get("expose", [])}


def test_copied_env_is_used_and_a_hosted_llm_is_an_env_change(tmp_path: Path) -> None:
    project = _clone(tmp_path)
    text = (project / ".env.example").read_text()
    text = re.sub(r"(?m)^CITEQA_RATE_LIMIT=.*$", "CITEQA_RATE_LIMIT=5/minute", text)
    text = re.sub(r"(?m)^CITEQA_API_KEYS=.*$", "CITEQA_API_KEYS=k1,k2", text)
    text += "\nCITEQA_LLM_MODEL=openai/gpt-4o-mini\nCITEQA_LLM_API_BASE=\nCITEQA_LLM_API_KEY=sk-test\n"
    (project / ".env").write_text(text)
    environment = _config(project)["services"]["api"]["environment"]
    assert environment["CITEQA_RATE_LIMIT"] == "5/minute"
    assert environment["CITEQA_API_KEYS"] == "k1,k2"
    assert environment["CITEQA_LLM_MODEL"] == "openai/gpt-4o-mini"
    assert environment["CITEQA_LLM_API_BASE"] in ("", None)  # the provider's default endpoint
    assert environment["CITEQA_LLM_API_KEY"] == "sk-test"


@pytest.mark.parametrize("profile", ["milvus", "pgvector"])
def test_engine_profiles_validate_and_stay_opt_in(tmp_path: Path, profile: str) -> None:
    """`docker-compose --profile <engine> config` validates; the engine's service runs only with
    its profile, and the api does not depend on it (the default store stays FAISS)."""
    rendered = _config(_clone(tmp_path), "--profile", profile)
    service = rendered["services"][profile]
    assert service["profiles"] == [profile]
    assert profile not in (rendered["services"]["api"].get("depends_on") or {})
    assert profile in rendered.get("volumes", {})
    if profile == "pgvector":
        assert service["image"] == "pgvector/pgvector:pg15"
        assert service["environment"]["POSTGRES_DB"] == "citeqa"
        assert "pg_isready" in " ".join(service["healthcheck"]["test"])
