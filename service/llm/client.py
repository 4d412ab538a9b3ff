"""The one module that talks to litellm. Every model call, local or hosted, goes through here.

The embedded model is registered as a litellm custom provider (`citeqa/<model>`), so switching to
OpenAI, Anthropic, Ollama or vLLM is a change of `CITEQA_LLM_MODEL` (and API base/key) only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not try the network

import litellm
from litellm.litellm_core_utils import default_encoding  # noqa: F401  (offline tiktoken files)
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import ChatCompletionTokenLogprob, ChoiceLogprobs, TopLogprob

from service.errors import CiteqaError, LLMBadResponse, LLMTimeout, LLMUnavailable
from service.llm.embedded import LocalLlama
from service.settings import LOCAL_PROVIDER, Settings

litellm.telemetry = False
litellm.suppress_debug_info = True

Messages = list[dict[str, str]]

log = logging.getLogger(__name__)


TokenLogprobs = list[tuple[str, float]]  # (token text, natural-log probability), likeliest first


class LLM(Protocol):
    """What the pipeline needs from a model: a stream of text pieces for a chat prompt, and the
    likeliest first tokens of a reply with their log-probabilities (None when the provider does
    not report log-probabilities; the caller then reads the reply's text instead)."""

    name: str

    def stream(self, messages: Messages, *, max_tokens: int | None = None) -> AsyncIterator[str]: ...

    async def first_token(self, messages: Messages, *, top_k: int = 10) -> TokenLogprobs | None: ...


async def complete(llm: LLM, messages: Messages, *, max_tokens: int | None = None) -> str:
    return "".join([piece async for piece in llm.stream(messages, max_tokens=max_tokens)])


class LocalProvider(CustomLLM):
    """Adapts the in-process llama.cpp model to litellm's custom-provider interface."""

    def __init__(self, backend: LocalLlama) -> None:
        super().__init__()
        self.backend = backend

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
        messages = kwargs["messages"]
        params = kwargs.get("optional_params") or {}
        max_tokens = int(params.get("max_tokens") or params.get("max_completion_tokens") or 256)
        temperature = float(params.get("temperature") or 0.0)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # loop closed: nobody is listening any more
                stop.set()

        def work() -> None:
            try:
                for piece in self.backend.stream(messages, max_tokens, temperature, stop):
                    put(("text", piece))
                put(("end", None))
            except Exception as exc:  # handed to the awaiting coroutine, never lost
                put(("error", exc))

        threading.Thread(target=work, name="citeqa-llama", daemon=True).start()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise CustomLLMError(status_code=500, message=f"local model failed: {value}")
                done = kind == "end"
                yield {
                    "text": "" if done else value,
                    "is_finished": done,
                    "finish_reason": "stop" if done else "",
                    "usage": None,
                    "index": 0,
                    "tool_use": None,
                }
                if done:
                    return
        finally:
            stop.set()  # the consumer went away (client disconnected, timeout): stop decoding

    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:  # type: ignore[override]
        response: litellm.ModelResponse = kwargs["model_response"]
        response.model = kwargs.get("model", "")
        params = kwargs.get("optional_params") or {}
        if params.get("logprobs"):  # one token and its alternatives, as OpenAI's API reports them
            top = await asyncio.to_thread(
                self.backend.first_token, kwargs["messages"], int(params.get("top_logprobs") or 1)
            )
            alternatives = [TopLogprob(token=t, logprob=lp, bytes=None) for t, lp in top]
            first = top[0] if top else ("", 0.0)
            response.choices[0].message.content = first[0]  # type: ignore[union-attr]
            response.choices[0].logprobs = ChoiceLogprobs(  # type: ignore[union-attr]
                content=[
                    ChatCompletionTokenLogprob(token=first[0], logprob=first[1], bytes=None, top_logprobs=alternatives)
                ]
            )
            return response
        text = "".join([chunk["text"] async for chunk in self.astreaming(*args, **kwargs)])
        response.choices[0].message.content = text  # type: ignore[union-attr]
        return response


def register_local_provider(backend: LocalLlama) -> None:
    litellm.custom_provider_map = [p for p in litellm.custom_provider_map if p.get("provider") != LOCAL_PROVIDER] + [
        {"provider": LOCAL_PROVIDER, "custom_handler": LocalProvider(backend)}
    ]
    litellm.utils.custom_llm_setup()


# A stream that started and then turned to garbage (unparseable or wrongly shaped chunks): the
# upstream answered, badly, so it is a 502, not an outage.
_MID_STREAM = tuple(t for t in (getattr(litellm.exceptions, "MidStreamFallbackError", None),) if isinstance(t, type))


def _map_error(exc: Exception, timeout: float) -> CiteqaError:
    """The typed error a client sees. Upstream error text can carry a provider key or an internal
    host name, so it goes to the log (with the request id), never into the response."""
    if isinstance(exc, CiteqaError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, litellm.Timeout)):
        return LLMTimeout(f"the LLM did not answer within {timeout:g} s")
    log.warning("LLM call failed: %s: %s", type(exc).__name__, str(exc)[:2000])
    if _MID_STREAM and isinstance(exc, _MID_STREAM):
        return LLMBadResponse("the LLM sent a malformed response (details are in the server log)")
    if isinstance(
        exc,
        (
            litellm.APIConnectionError,
            litellm.ServiceUnavailableError,
            litellm.InternalServerError,
            litellm.AuthenticationError,
            litellm.RateLimitError,
            litellm.NotFoundError,
            litellm.PermissionDeniedError,
        ),
    ):
        return LLMUnavailable(f"the LLM is unavailable ({type(exc).__name__}; details are in the server log)")
    return LLMBadResponse(f"the LLM call failed ({type(exc).__name__}; details are in the server log)")


async def warm_up() -> None:
    """Make one mocked litellm call (no network, no model) at start-up. litellm and anyio import
    about sixty modules on their first call, and those imports hold the event loop for a few
    hundred milliseconds: without this the first request after start stalls every other one,
    /health included. A failed warm-up only costs that stall, so it is logged, never raised."""
    try:
        response = await litellm.acompletion(
            model="openai/warm-up", messages=[{"role": "user", "content": "warm-up"}], mock_response="ok", stream=True
        )
        async for _ in response:
            pass
    except Exception:
        log.warning("the litellm warm-up failed; the first request may be slow", exc_info=True)


class LiteLLMClient:
    def __init__(self, settings: Settings) -> None:
        self.name = settings.llm_model
        self._settings = settings

    async def stream(self, messages: Messages, *, max_tokens: int | None = None) -> AsyncIterator[str]:
        s = self._settings
        deadline = time.monotonic() + s.llm_timeout
        kwargs: dict[str, Any] = {
            "model": s.llm_model,
            "messages": messages,
            "temperature": s.llm_temperature,
            "max_tokens": max_tokens or s.llm_max_tokens,
            "timeout": s.llm_timeout,
            "stream": True,
            "num_retries": 0,
        }
        if s.llm_api_base:
            kwargs["api_base"] = s.llm_api_base
        if s.llm_api_key:
            kwargs["api_key"] = s.llm_api_key.get_secret_value()
        response = None
        wrote = False
        try:
            async with asyncio.timeout(s.llm_timeout):
                response = await litellm.acompletion(**kwargs)
            iterator = response.__aiter__()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LLMTimeout(f"the LLM did not finish within {s.llm_timeout:g} s")
                try:
                    async with asyncio.timeout(remaining):
                        chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    if not wrote:  # e.g. a 200 whose body is not a completion at all
                        raise LLMBadResponse("the LLM returned an empty completion") from None
                    return
                try:
                    piece = chunk.choices[0].delta.content
                except (AttributeError, IndexError) as exc:
                    log.warning("LLM sent a malformed chunk: %s", str(chunk)[:2000])
                    raise LLMBadResponse("the LLM sent a malformed chunk (details are in the server log)") from exc
                if piece:
                    wrote = True
                    yield piece
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise _map_error(exc, s.llm_timeout) from exc
        finally:
            closer = getattr(getattr(response, "completion_stream", None), "aclose", None)
            if closer is not None:
                # closing a stream that already failed must not mask the error
                with contextlib.suppress(Exception):
                    await closer()

    async def first_token(self, messages: Messages, *, top_k: int = 10) -> TokenLogprobs | None:
        """One token of reply, with the `top_k` likeliest alternatives and their log-probabilities
        (OpenAI's `logprobs`/`top_logprobs`). None when the provider does not report them."""
        s = self._settings
        kwargs: dict[str, Any] = {
            "model": s.llm_model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": 1,
            "logprobs": True,
            "top_logprobs": top_k,
            "timeout": s.llm_timeout,
            "num_retries": 0,
        }
        if s.llm_api_base:
            kwargs["api_base"] = s.llm_api_base
        if s.llm_api_key:
            kwargs["api_key"] = s.llm_api_key.get_secret_value()
        try:
            async with asyncio.timeout(s.llm_timeout):
                response = await litellm.acompletion(**kwargs)
        except asyncio.CancelledError:
            raise
        except litellm.UnsupportedParamsError:
            return None  # a provider without log-probabilities: the caller reads text instead
        except Exception as exc:
            raise _map_error(exc, s.llm_timeout) from exc
        try:
            content = response.choices[0].logprobs.content  # type: ignore[union-attr]
            top = content[0].top_logprobs if content else None
        except (AttributeError, IndexError, TypeError):
            return None
        if not top:
            return None
        return sorted(((str(t.token), float(t.logprob)) for t in top), key=lambda p: -p[1])
