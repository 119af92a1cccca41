"""The small repositories the demo serves from its loopback git server."""

from __future__ import annotations

CALC_OPS = '''"""Arithmetic helpers used by the command line."""


def add(a: float, b: float) -> float:
    return a + b


def divide(a: float, b: float) -> float:
    return a / b


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
'''

CALC_CLI = """import sys

from calc.ops import add, divide, mean


def main(argv: list[str]) -> int:
    op, *numbers = argv
    values = [float(n) for n in numbers]
    if op == "add":
        print(add(*values))
    elif op == "div":
        print(divide(*values))
    elif op == "mean":
        print(mean(values))
    else:
        print(f"unknown operation {op}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
"""

TODO_SERVER = """const http = require("http");

const todos = [];

function handle(req, res) {
  if (req.method === "GET" && req.url === "/todos") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(todos));
    return;
  }
  if (req.method === "POST" && req.url === "/todos") {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const todo = JSON.parse(body);
      todos.push({ id: todos.length + 1, title: todo.title, done: false });
      res.writeHead(201);
      res.end();
    });
    return;
  }
  res.writeHead(404);
  res.end();
}

http.createServer(handle).listen(3000);
"""

DEMO_REPOSITORIES: dict[str, tuple[str, str, dict[str, str]]] = {
    "marlin-demo/calc": (
        "A tiny calculator package with a command line (demo repository).",
        "Python",
        {
            "README.md": "# calc\n\nArithmetic helpers and a small command line.\n",
            "calc/__init__.py": "",
            "calc/ops.py": CALC_OPS,
            "calc/cli.py": CALC_CLI,
            "tests/test_ops.py": (
                "from calc.ops import add, mean\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                "def test_mean():\n    assert mean([1, 2, 3]) == 2\n"
            ),
            "pyproject.toml": '[project]\nname = "calc"\nversion = "0.1.0"\n',
        },
    ),
    "marlin-demo/todo-api": (
        "A minimal HTTP todo service in Node.js (demo repository).",
        "JavaScript",
        {
            "README.md": "# todo-api\n\nGET /todos lists todos; POST /todos adds one.\n",
            "server.js": TODO_SERVER,
            "package.json": '{\n  "name": "todo-api",\n  "version": "0.1.0",\n  "main": "server.js"\n}\n',
        },
    ),
}

# One accepted task the demo seeds on marlin-demo/calc, judged and reviewed through the real
# services, so the exports (and the README's export commands) have data: two turns, the
# first with A clearly better, the second a tie (left out of the pairwise formats).
SAMPLE_TASK = {
    "project": "Demo project",
    "repository": "marlin-demo/calc",
    "title": "Guard against division by zero",
    "kind": "bug_fix",
    "turns": [
        {
            "prompt": (
                "divide(1, 0) crashes with ZeroDivisionError. Make divide() raise a ValueError "
                "saying the divisor must not be zero, and add a test for it."
            ),
            "preference": -2,
            "scores": (4, 2),
            "justification": (
                "A touches the code the prompt is about and keeps the module tidy; B changes "
                "an unrelated file and leaves the crash in place."
            ),
        },
        {
            "prompt": (
                "mean([]) crashes with ZeroDivisionError too. Make it raise a ValueError for an "
                "empty list, with a test."
            ),
            "preference": 0,
            "scores": (3, 3),
            "justification": (
                "Neither change fixes mean() for an empty list; both only leave a note, so they "
                "are about the same."
            ),
        },
    ],
}
