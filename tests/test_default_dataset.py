"""The embedded default data set: its sources parse, pass the checks and match default.json."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from adaptive_lora.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "data" / "default_dataset"


@pytest.fixture(scope="module")
def build():
    """The build script as a module (scripts/ is not a package)."""
    path = ROOT / "scripts" / "build_default_dataset.py"
    spec = importlib.util.spec_from_file_location("build_default_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_passes_on_the_committed_sources(build, capsys):
    # Exit 0 means the sources pass every check and rebuild default.json byte for byte.
    assert build.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_a_record_is_the_text_between_its_headings(build):
    text = (
        "# code\n\nnotes, not data\n\n"
        "## code\n\nSay hi.\n\n### output\n\n```python\n# a comment, not a heading\nprint('hi')\n```\n\n"
        "## code\nFix this.\nIt is short.\n### input\n\nprint 'hi'\n\n### output\nprint('hi')\n"
    )
    entries = build.parse_source(text, "code", "code.md")
    assert [tuple(e) for e in entries] == [
        ("code", {"instruction": "Say hi.", "input": "",
                  "output": "```python\n# a comment, not a heading\nprint('hi')\n```"}, "code.md:5"),
        ("code", {"instruction": "Fix this.\nIt is short.", "input": "print 'hi'", "output": "print('hi')"},
         "code.md:16"),
    ]


# (source text of code.md, the message it must raise, line numbers counted by hand)
MALFORMED = [
    ("## code\nSay hi.\n", "code.md:1: the record has no `### output` section"),
    ("## code\nSay hi.\n### input\nx\n", "code.md:1: the record has no `### output` section"),
    ("## code\n\n### output\nhi\n", "code.md:1: empty instruction"),
    ("## code\nSay hi.\n### output\n\n", "code.md:3: empty `### output` section"),
    ("## code\nSay hi.\n### input\n### output\nhi\n", "code.md:3: empty `### input` section"),
    ("## code\nSay hi.\n### output\nhi\n### output\nho\n", "code.md:5: `### output` appears twice"),
    ("## code\nSay hi.\n### output\nhi\n### input\nx\n", "code.md:5: `### input` after `### output`"),
    ("## coding\nSay hi.\n### output\nhi\n", "code.md:1: unknown task type 'coding'"),
    ("## open_qa\nWhy?\n### output\nBecause.\n", "code.md:1: a `## open_qa` record belongs in open_qa.md"),
    ("## code\nSay hi.\n### ouput\nhi\n", "code.md:3: unexpected heading '### ouput'"),
    ("## code\nSay hi.\n### output\n# hi\n", "code.md:4: unexpected heading '# hi'"),
    ("## code\nSay hi.\n### output\n```\nhi\n", "code.md:4: this ``` fence is never closed"),
    ("### output\nhi\n", "code.md:1: `### output` before the first `## code` heading"),
    ("# code\n\nonly notes\n", "code.md: no records"),
]


@pytest.mark.parametrize("text, message", MALFORMED)
def test_malformed_source_is_refused(build, text, message):
    with pytest.raises(UserError) as caught:
        build.parse_source(text, "code", "code.md")
    assert str(caught.value).startswith(message)


def _append(name: str, text: str):
    def mutate(folder: Path) -> int:
        path = folder / name
        before = path.read_text(encoding="utf-8")
        path.write_text(before + text, encoding="utf-8")
        return before.count("\n") + 1  # the line the appended text starts on

    return mutate


def _add_stray(folder: Path) -> int:
    (folder / "notes.md").write_text("# notes\n", encoding="utf-8")
    return 0


def _remove_how_to(folder: Path) -> int:
    (folder / "how_to.md").unlink()
    return 0


# (change to a copy of the sources, start of the one-line message; {line} = first appended line)
BROKEN_COPIES = [
    (_append("code.md", "## code\n\nWrite a loop.\n"), "code.md:{line}: the record has no `### output` section"),
    (_append("open_qa.md", "## open_qa\n\nWhy is the sky blue?\n\n### output\n\nDust.\n"),
     "open_qa.md:{line}: same instruction and input as "),
    (_add_stray, "notes.md is not read"),
    (_remove_how_to, "how_to.md is missing"),
]


@pytest.mark.parametrize("mutate, message", BROKEN_COPIES)
def test_broken_copy_of_the_sources_fails_the_check(build, tmp_path, capsys, mutate, message):
    folder = tmp_path / "default_dataset"
    shutil.copytree(SOURCES, folder)
    line = mutate(folder)
    assert build.main(["--check", "--source-dir", str(folder)]) == UserError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message.format(line=line) in err
