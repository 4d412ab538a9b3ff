"""Answer-quality evals. Every entry point (pytest's conftest, `evals.probe`, `evals.heldout`) runs
the real models offline, so the environment they need is set here, once, before any of them loads:
no hub downloads, litellm's bundled cost map, no tokenizer thread pool fighting llama.cpp's."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
