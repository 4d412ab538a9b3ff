"""FastAPI dependencies: routes get their collaborators here, and tests swap them with
`app.dependency_overrides`.

Every dependency is `async def`: FastAPI runs a plain `def` dependency in its thread pool (40
threads), so under a burst of /ask requests even /health would wait for a thread. None of them
blocks, so on the event loop they cost microseconds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.answer.pipeline import Answerer
from service.api.state import AppState
from service.errors import NotReady
from service.settings import Settings


async def get_state(request: Request) -> AppState:
    return request.app.state.citeqa  # type: ignore[no-any-return]


async def get_settings_dep(state: Annotated[AppState, Depends(get_state)]) -> Settings:
    return state.settings


async def get_answerer(state: Annotated[AppState, Depends(get_state)]) -> Answerer:
    if state.answerer is None:
        raise NotReady(f"the service is {state.status}" + (f": {state.detail}" if state.detail else ""), retry_after=5)
    return state.answerer


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
