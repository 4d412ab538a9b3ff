"""Every setting of citeqa, in one place. Read from `CITEQA_*` environment variables and `.env`.

Bad values fail at start-up with a message naming the setting, not on the first request.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOCAL_PROVIDER = "citeqa"
DEFAULT_LLM = f"{LOCAL_PROVIDER}/qwen2.5-coder-1.5b"


_UNITS = {
    "second": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "h": 3600,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """'3/minute' -> (3, 60.0); '10/5s' -> (10, 5.0)."""
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _UNITS or int(match.group(1)) < 1:
        raise ValueError(f"rate limit {text!r} must look like '3/minute', '10/second' or '100/hour'")
    return int(match.group(1)), float(_UNITS[match.group(3)] * int(match.group(2) or 1))


REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


def check_redis_url(url: str) -> str:
    """The URL, stripped, or a ValueError saying what a Redis URL looks like. The message itself
    does not quote the URL, which may carry a password."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise ValueError(
            f"redis_url (scheme {parts.scheme or 'missing'!r}) must look like redis://host:6379/0, "
            "rediss://user:pass@host:6380/0 or redis+unix:///path/to/redis.sock"
        )
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number or out of range)
    except ValueError as exc:
        raise ValueError(f"redis_url has a bad port: {exc}") from None
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITEQA_", env_file=".env", extra="ignore")

    # Corpus and index
    corpus_dir: Path = Path("seeds")
    index_dir: Path = Path(".citeqa/index")
    # Where chunks are stored and searched: the FAISS folder above, Milvus (Lite file or server), or
    # PostgreSQL with pgvector.
    vector_store: Literal["faiss", "milvus", "pgvector"] = "faiss"
    milvus_uri: str = ".citeqa/milvus.db"
    pgvector_dsn: str = "postgresql://citeqa@127.0.0.1:5432/citeqa"
    # The chunks table (and its `_postings` and `_files` tables): several corpora in one database.
    pgvector_table: str = Field("citeqa_chunks", pattern=r"^[a-z_][a-z0-9_]{0,40}$")
    pgvector_pool_size: int = Field(4, ge=1, le=64)  # search connections a service keeps at most
    # pgvector's dense index: auto (HNSW below 150k chunks, IVFFlat with rows/1000 cells from there:
    # docs/scaling.md), or one of them. `citeqa index` rebuilds it from the stored vectors when the
    # choice changes; nothing is re-embedded.
    pgvector_index: Literal["auto", "hnsw", "ivfflat"] = "auto"
    pgvector_probes: int = Field(0, ge=0, le=32_768)  # IVFFlat cells a search scans; 0: 2*sqrt(cells)
    embedding_model: str = "all-MiniLM-L6-v2"
    query_encoder: Literal["onnx", "torch"] = "onnx"
    chunk_tokens: int = Field(160, ge=16, le=2048)
    chunk_overlap: int = Field(32, ge=0, le=1024)
    index_lock_timeout: float = Field(600.0, ge=0.0, le=86400.0)
    # Seconds between looks at the index's `CURRENT` file: a new version is loaded in the background
    # and swapped in between requests (service/api/reload.py). 0 reads `CURRENT` only at start.
    # Milvus and pgvector: between checks that the stored files changed (then rarity is re-read).
    index_reload_interval: float = Field(5.0, ge=0.0, le=3600.0)

    # Retrieval and context
    top_k: int = Field(5, ge=1, le=20)
    rrf_k: int = Field(60, ge=1)
    context_max_tokens: int = Field(400, ge=32, le=8000)
    context_max_sentences: int = Field(6, ge=1, le=50)
    context_margin: float = Field(0.25, ge=0.0, le=10.0)
    context_window: int = Field(1, ge=0, le=10)
    min_relevance: float = Field(0.30, ge=-1.0, le=1.0)

    # LLM (every call goes through litellm)
    llm_model: str = DEFAULT_LLM
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_max_tokens: int = Field(80, ge=1, le=4096)
    llm_timeout: float = Field(60.0, gt=0)
    llm_max_concurrency: int = Field(1, ge=1, le=64)
    llm_queue_size: int = Field(8, ge=0, le=1000)
    # Ask again with only the sentences an answer rests on; a refusal there vetoes the answer
    # (service/answer/second_look.py). Costs one short extra LLM call per answer.
    confirm_answers: bool = True
    # The second look vetoes when the model gives a refusal more than this probability (read from
    # its first token's log-probabilities; providers without them fall back to reading the text).
    # 1.0 never vetoes by probability: the evals use it to record the probabilities they calibrate on.
    confirm_refusal_p: float = Field(0.25, ge=0.0, le=1.0)

    # Embedded local model (used when llm_model starts with "citeqa/")
    model_dir: Path = Path(".citeqa/models")
    local_n_ctx: int = Field(2048, ge=256, le=32768)
    local_n_threads: int | None = Field(None, ge=1)

    # Conversation
    history_max_turns: int = Field(6, ge=0, le=50)

    # HTTP
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(64_000, ge=1024)
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto are believed (a comma-separated list, or
    # "*"): set it to your reverse proxy's address. Empty trusts none, so a client cannot pick the
    # address its rate limit is counted under.
    forwarded_allow_ips: str | None = None
    log_level: str = "INFO"

    # Access control
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    rate_limit: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The address people open this service's own page at (e.g. https://qa.internal.example): with
    # API keys on, that page gets widget tokens only when it is named here. Never guessed from the
    # request's Host header, which any client sets.
    public_url: str | None = None
    widget_tokens: bool = True  # with API keys on, false refuses every widget token
    token_rate_limit: str | None = "30/minute"  # per client address, for POST /widget/token
    token_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(300, ge=10, le=3600)
    # Where the rate limits are kept so that every replica shares them (redis://host:6379/0).
    # Unset: each process keeps its own, in memory.
    redis_url: str | None = None

    # Feedback (POST /feedback): a SQLite file path, or a SQLAlchemy URL such as
    # postgresql+psycopg://user:pass@host/db so that every replica writes to one database.
    feedback_db: str = ".citeqa/feedback.db"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("public_url", mode="before")
    @classmethod
    def _origin_of_url(cls, value: object) -> object:
        """An origin is scheme://host[:port]: a trailing slash or path would never match one."""
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if not re.match(r"^https?://[^/\s]+", value):
                raise ValueError("public_url must look like https://host or http://host:port")
            return re.match(r"^https?://[^/\s]+", value).group(0)  # type: ignore[union-attr]
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("rate_limit", "token_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value:
            parse_rate(value)
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        return check_redis_url(value) if value and value.strip() else None

    @field_validator("feedback_db")
    @classmethod
    def _feedback_db(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("feedback_db must be a file path or a SQLAlchemy URL (postgresql+psycopg://...)")
        return value

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return self

    @property
    def token_origins(self) -> list[str]:
        """The origins a widget token may be issued to: the listed CORS origins and the public URL."""
        return [*self.cors_origins, *([self.public_url] if self.public_url else [])]

    @property
    def uses_local_model(self) -> bool:
        return self.llm_model.startswith(f"{LOCAL_PROVIDER}/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
