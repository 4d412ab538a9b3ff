"""Every setting is documented where an operator looks for it: the settings tables of
docs/configuration.md (with its default and its bounds) and the annotated .env.example that docker
compose reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
HEADER = ["setting", "default", "bounds", "what it does"]
NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?")


def env_name(field: str) -> str:
    return f"CITEQA_{field.upper()}"


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def settings_rows(text: str) -> dict[str, list[str]]:
    """The rows of every table whose header is HEADER, by the variable named in their first cell."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        row = cells(line)
        if [c.lower() for c in row] == HEADER:
            in_table = True
        elif in_table and not set("".join(row)) <= set("-: "):
            name = row[0].strip("`")
            assert name not in rows, f"{name} has two rows in {CONFIGURATION.name}"
            rows[name] = row
    return rows


def bounds(info: FieldInfo) -> list[float]:
    found = []
    for meta in info.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            value = getattr(meta, attr, None)
            if value is not None:
                found.append(float(value))
    return found


ROWS = settings_rows(CONFIGURATION.read_text())


def test_the_settings_tables_are_found() -> None:
    assert len(ROWS) >= 10, f"no settings table with the header {HEADER} in {CONFIGURATION}"


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_has_a_row(field: str) -> None:
    name = env_name(field)
    assert name in ROWS, f"{name} is not in a settings table of docs/configuration.md"
    row = ROWS[name]
    assert len(row) == len(HEADER), f"{name}: expected the columns {HEADER}, got {row}"
    assert all(row), f"{name}: every cell needs something (use – for no bounds), got {row}"


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_the_default_matches(field: str) -> None:
    row = ROWS.get(env_name(field))
    if row is None:
        pytest.skip("no row (reported by test_every_setting_has_a_row)")
    default = Settings.model_fields[field].get_default(call_default_factory=True)
    if default is None or default == []:
        return  # "unset", "all cores", "derived from the keys": described in words
    written = re.findall(r"`([^`]*)`", row[1])
    assert written, f"{env_name(field)}: the default {default!r} should be written as `{default}`"
    value = written[0]
    if isinstance(default, bool):
        assert value == str(default).lower(), f"{env_name(field)}: documented {value}, code says {default}"
    elif isinstance(default, int | float):
        assert float(value) == float(default), f"{env_name(field)}: documented {value}, code says {default}"
    else:
        assert value == str(default), f"{env_name(field)}: documented {value}, code says {default}"


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_the_bounds_match(field: str) -> None:
    row = ROWS.get(env_name(field))
    if row is None:
        pytest.skip("no row (reported by test_every_setting_has_a_row)")
    written = [float(n) for n in NUMBER.findall(row[2])]
    missing = [b for b in bounds(Settings.model_fields[field]) if b not in written]
    assert missing == [], f"{env_name(field)}: the bounds cell {row[2]!r} does not give {missing}"


def test_no_row_names_a_setting_that_does_not_exist() -> None:
    known = {env_name(field) for field in Settings.model_fields}
    assert sorted(set(ROWS) - known) == []


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_in_env_example(field: str) -> None:
    name = env_name(field)
    text = (ROOT / ".env.example").read_text()
    assert re.search(rf"^#?\s*{name}=", text, re.MULTILINE), f".env.example has no line {name}=... (or # {name}=...)"
