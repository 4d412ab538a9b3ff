"""Prompt templates, loaded from `prompts/*.txt` once at start-up and rendered with explicit
variables. A template that names a variable the caller does not pass is an error, not a blank."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
REQUIRED = {
    "answer_system": set(),
    "answer_user": {"passages", "question"},
    "rewrite_system": set(),
    "rewrite_user": {"history", "question"},
}


class PromptError(RuntimeError):
    """Seen by the operator at start-up or in tests: a template is missing or wrong."""


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    @property
    def variables(self) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(self.text) if f}

    def render(self, **values: str) -> str:
        missing = self.variables - values.keys()
        if missing:
            raise PromptError(f"prompt {self.name!r} needs {sorted(missing)}")
        extra = values.keys() - self.variables
        if extra:
            raise PromptError(f"prompt {self.name!r} does not use {sorted(extra)}")
        return self.text.format(**values)


class Prompts:
    def __init__(self, templates: dict[str, Template]) -> None:
        self._templates = templates

    @classmethod
    def load(cls, folder: Path = PROMPTS_DIR) -> Prompts:
        templates = {}
        for name, needed in REQUIRED.items():
            path = folder / f"{name}.txt"
            if not path.is_file():
                raise PromptError(f"prompt file {path} is missing")
            template = Template(name, path.read_text(encoding="utf-8").strip())
            if template.variables != needed:
                raise PromptError(f"prompt {path} must use exactly {sorted(needed)}, uses {sorted(template.variables)}")
            templates[name] = template
        return cls(templates)

    def __getitem__(self, name: str) -> Template:
        return self._templates[name]
