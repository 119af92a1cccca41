"""answers.parse: a model's free-form answer → an explanation and one unified diff.

Every diff parse produces is applied with `git apply` to the original files, so the tests
check the change a contractor would actually get, not just the text of the diff.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks.answers import AnswerError, ParsedAnswer, parse

OPS = "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    return a / b\n"
SAFE_OPS = "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    if b == 0:\n        return None\n    return a / b\n"
ORIGINALS = {
    "README.md": "# calc\n\nA tiny calculator.\n",
    "calc/__init__.py": "",
    "calc/ops.py": OPS,
}

DIV_DIFF = (
    "--- a/calc/ops.py\n"
    "+++ b/calc/ops.py\n"
    "@@ -4,3 +4,5 @@\n"
    " \n"
    " def div(a, b):\n"
    "+    if b == 0:\n"
    "+        return None\n"
    "     return a / b\n"
)
README_DIFF = (
    "--- a/README.md\n"
    "+++ b/README.md\n"
    "@@ -1,3 +1,3 @@\n"
    " # calc\n"
    " \n"
    "-A tiny calculator.\n"
    "+A tiny, safe calculator.\n"
)
NEW_FILE_DIFF = "--- /dev/null\n+++ b/calc/safe.py\n@@ -0,0 +1,2 @@\n+def safe():\n+    pass\n"


def read_original(path: str) -> str | None:
    return ORIGINALS.get(path)


def applied(diff: str, tmp_path: Path) -> dict[str, str]:
    """Every file's text after `git apply` of `diff` to the originals (fails if it won't)."""
    root = tmp_path / "tree"
    for rel, text in ORIGINALS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "change.diff").write_text(diff)
    result = subprocess.run(
        ["git", "apply", "--verbose", str(tmp_path / "change.diff")],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, f"the diff does not apply:\n{result.stderr}\n{diff}"
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def parsed(text: str) -> ParsedAnswer:
    return parse(text, read_original=read_original)


def test_a_fenced_diff_block(tmp_path):
    answer = parsed(
        f"I guard the division.\n\n```diff\n{DIV_DIFF}```\n\nThat returns None for zero."
    )

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS
    assert answer.diff.startswith("--- a/calc/ops.py\n+++ b/calc/ops.py\n")
    assert "I guard the division." in answer.explanation
    assert "That returns None for zero." in answer.explanation
    assert "```" not in answer.explanation
    assert "@@" not in answer.explanation


@pytest.mark.parametrize("info", ["patch", "udiff", "DIFF", ""])
def test_other_fence_labels_holding_a_diff(tmp_path, info):
    answer = parsed(f"Change:\n\n```{info}\n{DIV_DIFF}```\n")

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS
    assert answer.explanation == "Change:"


def test_a_tilde_fence(tmp_path):
    answer = parsed(f"Change:\n\n~~~diff\n{DIV_DIFF}~~~\n")

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS


def test_a_bare_unified_diff_after_prose(tmp_path):
    answer = parsed(f"Here is the change; it guards the zero case.\n\n{DIV_DIFF}")

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS
    assert answer.explanation == "Here is the change; it guards the zero case."


def test_a_bare_diff_without_path_prefixes(tmp_path):
    diff = DIV_DIFF.replace("a/calc/ops.py", "calc/ops.py").replace("b/calc/ops.py", "calc/ops.py")

    answer = parsed(f"Plain paths:\n\n{diff}")

    assert answer.diff.startswith("--- a/calc/ops.py\n+++ b/calc/ops.py\n")
    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS


GIT_DIFF = (
    "diff --git a/calc/ops.py b/calc/ops.py\n"
    "index 1111111..2222222 100644\n" + DIV_DIFF + "diff --git a/calc/safe.py b/calc/safe.py\n"
    "new file mode 100644\n"
    "index 0000000..3333333\n" + NEW_FILE_DIFF
)


def test_diff_git_headers_in_a_fence(tmp_path):
    answer = parsed(f"Two files.\n\n```diff\n{GIT_DIFF}```\n")

    after = applied(answer.diff, tmp_path)
    assert after["calc/ops.py"] == SAFE_OPS
    assert after["calc/safe.py"] == "def safe():\n    pass\n"
    assert "--- /dev/null\n+++ b/calc/safe.py\n" in answer.diff
    assert answer.explanation == "Two files."


def test_a_bare_diff_with_diff_git_headers(tmp_path):
    answer = parsed(f"Two files.\n\n{GIT_DIFF}")

    after = applied(answer.diff, tmp_path)
    assert after["calc/ops.py"] == SAFE_OPS
    assert after["calc/safe.py"] == "def safe():\n    pass\n"
    assert answer.explanation.startswith("Two files.")


def test_a_bare_diff_with_diff_git_headers_leaves_them_out_of_the_explanation():
    answer = parsed(f"Two files.\n\n{GIT_DIFF}")

    assert answer.explanation == "Two files."


@pytest.mark.parametrize(
    "label",
    [
        "File: calc/ops.py",
        "file: `calc/ops.py`",
        "### calc/ops.py",
        "**calc/ops.py**",
        "calc/ops.py:",
    ],
)
def test_a_whole_file_under_a_path_line(tmp_path, label):
    answer = parsed(f"The whole file:\n\n{label}\n```python\n{SAFE_OPS}```\n\nDone.")

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS
    assert answer.diff.startswith("--- a/calc/ops.py\n+++ b/calc/ops.py\n")
    assert "calc/ops.py" not in answer.explanation
    assert "return None" not in answer.explanation
    assert "The whole file:" in answer.explanation
    assert "Done." in answer.explanation


def test_a_whole_file_named_in_the_fence(tmp_path):
    answer = parsed(f"The whole file:\n\n```python calc/ops.py\n{SAFE_OPS}```\n")

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS
    assert answer.explanation == "The whole file:"


def test_a_whole_file_without_a_final_newline(tmp_path):
    answer = parsed(f"```python calc/ops.py\n{SAFE_OPS.rstrip()}\n```\n")

    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS


@pytest.mark.parametrize(
    "text",
    [
        "A new helper.\n\n```python calc/safe.py\ndef safe():\n    pass\n```\n",
        "A new helper.\n\nFile: calc/safe.py\n```python\ndef safe():\n    pass\n```\n",
    ],
)
def test_a_new_file_is_diffed_against_nothing(tmp_path, text):
    answer = parsed(text)

    assert answer.diff.startswith("--- /dev/null\n+++ b/calc/safe.py\n")
    after = applied(answer.diff, tmp_path)
    assert after["calc/safe.py"] == "def safe():\n    pass\n"
    assert after["calc/ops.py"] == OPS
    assert answer.explanation == "A new helper."


def test_several_fenced_diffs_make_one_diff(tmp_path):
    answer = parsed(
        "First the function:\n\n"
        f"```diff\n{DIV_DIFF}```\n\n"
        "Then the docs:\n\n"
        f"```diff\n{README_DIFF}```\n\n"
        "And a helper:\n\n"
        "```python calc/safe.py\ndef safe():\n    pass\n```\n"
    )

    after = applied(answer.diff, tmp_path)
    assert after["calc/ops.py"] == SAFE_OPS
    assert after["README.md"] == "# calc\n\nA tiny, safe calculator.\n"
    assert after["calc/safe.py"] == "def safe():\n    pass\n"
    for prose in ("First the function:", "Then the docs:", "And a helper:"):
        assert prose in answer.explanation
    assert "@@" not in answer.explanation
    assert "def safe" not in answer.explanation


def test_an_illustrative_code_block_stays_in_the_explanation(tmp_path):
    example = "```python\n>>> div(1, 0) is None\nTrue\n```"
    answer = parsed(f"After the change:\n\n{example}\n\nThe patch:\n\n```diff\n{DIV_DIFF}```\n")

    assert example in answer.explanation
    assert "The patch:" in answer.explanation
    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS


def test_an_illustrative_block_before_a_bare_diff(tmp_path):
    example = "```python\nprint(div(1, 0))\n```"
    answer = parsed(f"Try:\n\n{example}\n\nChange:\n\n{DIV_DIFF}")

    assert example in answer.explanation
    assert "@@" not in answer.explanation
    assert applied(answer.diff, tmp_path)["calc/ops.py"] == SAFE_OPS


@pytest.mark.parametrize(
    "text",
    [
        "I would write:\n\n```python\ndef div(a, b):\n    return None\n```\n\nbut I am not sure.",
        "No code at all, just advice: check b before dividing.",
        "",
    ],
)
def test_an_answer_without_a_change_is_an_error(text):
    with pytest.raises(AnswerError):
        parsed(text)


def test_a_diff_whose_hunk_is_longer_than_its_header_says_is_an_error():
    mangled = DIV_DIFF.replace("@@ -4,3 +4,5 @@", "@@ -4,9 +4,12 @@")

    with pytest.raises(AnswerError):
        parsed(f"Change:\n\n```diff\n{mangled}```\n")


def test_a_diff_with_no_hunk_lines_is_an_error():
    with pytest.raises(AnswerError):
        parsed("```diff\n--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,2 +1,2 @@\n```\n")


def test_a_diff_whose_hunk_is_shorter_than_its_body_is_an_error():
    # The header claims 2+3 lines; the body holds two more changes that would be lost.
    mangled = (
        "--- a/README.md\n+++ b/README.md\n@@ -1,2 +1,3 @@\n"
        " # calc\n+\n \n-A tiny calculator.\n+A tiny, safe calculator.\n"
    )

    with pytest.raises(AnswerError):
        parsed(f"Change:\n\n```diff\n{mangled}```\n")


def test_the_explanation_never_holds_the_diff():
    answer = parsed(f"Short reason.\n\n```diff\n{DIV_DIFF}```\n")

    assert answer.explanation == "Short reason."
    for line in DIV_DIFF.splitlines():
        if line.strip():
            assert line not in answer.explanation


def test_fence_attributes_are_not_taken_for_file_names():
    text = (
        "Here:\n```python {.line-numbers}\nprint(1)\n```\n"
        "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n```\n"
    )
    parsed = parse(text, read_original=lambda path: "a\n")
    assert "{.line-numbers}" not in parsed.diff
    assert parsed.diff.count("+++ ") == 1


def test_an_unclosed_fence_does_not_hide_the_diff_inside_it():
    text = "Notes:\n```python\nx = 1\n~~~diff\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n~~~\n"
    # The ``` block never closes: no fenced block at all, and the diff is read as a bare one.
    parsed = parse(text, read_original=lambda path: "a\n")
    assert "+b" in parsed.diff and parsed.explanation.startswith("Notes:")
