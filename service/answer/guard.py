"""A first line against prompt injection in the question itself.

The system prompt already says that questions and passages are data, and the citation check
refuses answers the passages do not support; this catches the common openings of an injection
("ignore your instructions", "print your system prompt", "developer mode") before any LLM call,
so they are refused the same way every time, whatever the model would have done.
"""

from __future__ import annotations

import re

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.?!]{0,60}?\b(?:instructions?|rules|prompts?|guidelines|"
    r"directions|constraints|guardrails|articles|sources|passages|documents|context)\b"
    r"|\b(?:system|hidden|initial|original|secret|internal)\s+(?:prompt|instructions?|message|rules|configuration)\b"
    r"|\byour\s+(?:instructions|rules|prompt|configuration)\b"
    r"|\b(?:developer|dev|god|jailbreak|dan)\s+mode\b"
    r"|\b(?:repeat|print|output|reveal|show|dump)\b[^.?!]{0,40}?\b(?:text|everything|words|all)\s+above\b"
    r"|\bstarting\s+with\s+['\"]?you\s+are\b"
    r"|^\s*(?:system|assistant)\s*:",
    re.I,
)


def looks_like_injection(question: str) -> bool:
    return bool(_INJECTION.search(question))
