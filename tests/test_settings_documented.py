"""Every setting is documented where an operator looks for it: the README's settings table and the
annotated .env.example that docker compose reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("doc", ["README.md", ".env.example"])
def test_every_setting_is_documented(doc: str) -> None:
    text = (ROOT / doc).read_text()
    missing = [f"CITEQA_{name.upper()}" for name in Settings.model_fields if f"CITEQA_{name.upper()}" not in text]
    assert missing == [], f"{doc} does not mention {missing}"
