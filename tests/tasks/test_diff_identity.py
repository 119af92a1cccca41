"""Two candidates made the same change when their diffs differ only in whitespace or layout."""

from __future__ import annotations

import pytest

from tasks.diff_identity import same_change

BASE = """--- a/calc/ops.py
+++ b/calc/ops.py
@@ -4,2 +4,4 @@
 def div(a, b):
+    if b == 0:
+        raise ZeroDivisionError("b is zero")
     return a / b
"""


def _hunk(body: str, header: str = "@@ -4,2 +4,4 @@") -> str:
    return f"--- a/calc/ops.py\n+++ b/calc/ops.py\n{header}\n{body}"


@pytest.mark.parametrize(
    ("other", "same"),
    [
        # The very same text.
        (BASE, True),
        # Trailing spaces and other indentation on added lines.
        (
            _hunk(
                ' def div(a, b):\n+  if b == 0:   \n+      raise ZeroDivisionError("b is zero")\n'
                "     return a / b\n"
            ),
            True,
        ),
        # A blank line added as well: whitespace only.
        (
            _hunk(
                ' def div(a, b):\n+    if b == 0:\n+        raise ZeroDivisionError("b is zero")\n'
                "+\n     return a / b\n",
                "@@ -4,2 +4,5 @@",
            ),
            True,
        ),
        # More context lines and another hunk header: layout, not change.
        (
            "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -3,3 +3,5 @@\n \n def div(a, b):\n"
            '+    if b == 0:\n+        raise ZeroDivisionError("b is zero")\n     return a / b\n',
            True,
        ),
        # A re-indented context line on top (removed and added back with other whitespace).
        (
            _hunk(
                "-def div(a, b):\n+def div(a,  b):\n+    if b == 0:\n"
                '+        raise ZeroDivisionError("b is zero")\n     return a / b\n'
            ),
            True,
        ),
        # Another message: a real difference.
        (BASE.replace("b is zero", "division by zero"), False),
        # The same lines in another place of the file.
        (
            "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -1,1 +1,3 @@\n"
            '+    if b == 0:\n+        raise ZeroDivisionError("b is zero")\n def add(a, b):\n',
            False,
        ),
        # The same lines in another file.
        (BASE.replace("calc/ops.py", "calc/other.py"), False),
        # One line fewer.
        (_hunk(" def div(a, b):\n+    if b == 0:\n     return a / b\n", "@@ -4,2 +4,3 @@"), False),
        # Nothing at all.
        ("", False),
    ],
)
def test_it_tells_the_same_change_from_a_different_one(other, same):
    assert same_change(BASE, other) is same
    assert same_change(other, BASE) is same  # symmetric


def test_whitespace_inside_a_line_that_matters_to_nobody_is_ignored_but_words_are_not():
    # "return a/b" and "return a / b" are the same change; "return b / a" is not.
    first = _hunk(" def div(a, b):\n-    return a / b\n+    return a / b or 0\n", "@@ -4,2 +4,2 @@")
    spaced = first.replace("a / b or 0", "a/b  or  0")
    swapped = first.replace("a / b or 0", "b / a or 0")
    assert same_change(first, spaced)
    assert not same_change(first, swapped)


def test_text_that_is_not_a_diff_is_compared_without_whitespace():
    assert same_change("not a diff\n@@ nonsense", "not a  diff\n@@ nonsense ")
    assert not same_change("not a diff\n@@ nonsense", "another text\n@@ nonsense")
