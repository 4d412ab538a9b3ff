"""The answer path's CPU work (embedding the question, both searches, sentence scoring, the
citation check) runs here, off the event loop, in a pool one thread smaller than the machine.

Not in asyncio's default pool: that one has cpu_count + 4 threads, and under a burst they all
compete with the event loop for the GIL, so /health and queue refusals wait behind work that could
not run faster anyway. One core is left to the event loop; on two cores the pool has one thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

WORKERS = max(1, (os.cpu_count() or 2) - 1)
_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="citeqa-cpu")


async def run(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """`asyncio.to_thread` on this pool: the call sees the caller's context (its request id)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)
