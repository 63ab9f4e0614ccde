"""The README is the install contract: its two set-up commands are exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", setup, re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them_verbatim() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert "examples/train_gru.py" in commands[0] and "pytest" in commands[1]
    assert all("torch==2.13.0" in c for c in commands)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for c in commands:
        assert c in ci, f"the README command is not in .ci/run verbatim: {c}"


def test_dependencies_have_lower_bounds() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    names = re.findall(r'"([^"]+)"', deps)
    assert names and all(">=" in n for n in names)
    assert '"torch>=2.4"' in text
