"""The documentation holds together: its links lead somewhere, the README quotes the committed runs'
own numbers, and the README stays one that a newcomer reads."""

import glob
import json
import os
import re

import pytest

from helpers import ROOT

README = os.path.join(ROOT, "README.md")
DOCS = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
# Markdown links and images, `[text](target)` and `![alt](target)`; the target up to a space or `)`.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# The committed reference runs and the accuracy the README quotes for each (a fraction).
REFERENCE_RUNS = {"part1": "test_accuracy", "part2": "test_accuracy_cropped",
                  "part2-bidir": "test_accuracy_cropped"}
MAX_LINE = 100
MAX_README_LINES = 160


def _text(path):
    with open(path, encoding="utf-8") as file:
        return file.read()


def _code_free(text):
    """The text without fenced code blocks and inline code, where `[x](y)` is not a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("path", DOCS, ids=lambda path: os.path.relpath(path, ROOT))
def test_every_relative_link_leads_to_an_existing_file_or_folder(path):
    broken = []
    for target in LINK.findall(_code_free(_text(path))):
        target = target.split("#", 1)[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):  # an anchor here, or a URL
            continue
        if not os.path.exists(os.path.join(os.path.dirname(path), target)):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("run", sorted(REFERENCE_RUNS))
def test_the_readme_quotes_each_committed_runs_own_accuracy(run):
    """Every README line that names the run (`part2`, not `part2-bidir`) and quotes a percentage
    quotes the run's accuracy from its results.json, to two decimals; there is at least one."""
    results = json.loads(_text(os.path.join(ROOT, "logs", run, "results.json")))
    expected = f"{100 * results[REFERENCE_RUNS[run]]:.2f}%"
    name = re.compile(rf"(?<![\w-]){re.escape(run)}(?![\w-])")
    lines = [line for line in _text(README).splitlines() if name.search(line) and "%" in line]
    assert lines, f"no README line names {run} with its accuracy"
    assert [line for line in lines if expected not in line] == [], f"{run}: expected {expected}"


def test_the_readme_is_short_with_short_lines():
    lines = _text(README).splitlines()
    assert len(lines) <= MAX_README_LINES
    assert [n for n, line in enumerate(lines, 1) if len(line) > MAX_LINE] == []
