"""The tiktoken encoding, loaded without network access.

tiktoken downloads its BPE files on first use; litellm ships cl100k_base and o200k_base inside its
package, so we point TIKTOKEN_CACHE_DIR there (what `litellm.litellm_core_utils.default_encoding`
does) without paying for a full litellm import in the indexer.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import tiktoken

ENCODING = "cl100k_base"


def _point_tiktoken_at_litellm_files() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return
    cache = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    if cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


@lru_cache(maxsize=4)
def get_encoding(name: str = ENCODING) -> tiktoken.Encoding:
    _point_tiktoken_at_litellm_files()
    return tiktoken.get_encoding(name)


def count_tokens(text: str, name: str = ENCODING) -> int:
    return len(get_encoding(name).encode(text, disallowed_special=()))
