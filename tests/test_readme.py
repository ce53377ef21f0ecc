"""The README stays true to the code: every config key is listed, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from adaptive_lora.training.config import KEY_GROUP

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_listed():
    missing = [k for k in KEY_GROUP if f"`{k}`" not in README]
    assert not missing, f"README does not list the config keys {missing}"


def test_ci_runs_the_readme_test_command():
    block = re.search(r"# the tests.*?\n(.+?)\n", README).group(1).strip()
    assert block in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
