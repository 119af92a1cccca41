"""Shared by the benchmarks: Django and database set-up, synthetic GitHub data, reporting.

Nothing here is imported by the application. Call `setup()` before importing any model.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marlin_bench"

# --- Environment ---------------------------------------------------------------------------


def setup(*, database_url: str | None = None) -> None:
    """Django settings, django.setup(), the database created if missing, and migrated.

    Without DATABASE_URL the benchmarks use their own PostgreSQL database (never the
    development SQLite file, which they would otherwise overwrite).
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings.local")
    os.environ.setdefault("DATABASE_URL", database_url or DEFAULT_DATABASE_URL)
    ensure_postgres_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    migrate()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _postgres_params(url: str) -> dict | None:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql", "postgis"):
        return None
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
        "dbname": unquote(parts.path.lstrip("/")),
    }


def ensure_postgres_database(url: str) -> None:
    """CREATE DATABASE when DATABASE_URL names a PostgreSQL database that does not exist."""
    params = _postgres_params(url)
    if params is None or not params["dbname"]:
        return
    create_postgres_database(params["dbname"], params)


def create_postgres_database(name: str, params: dict) -> bool:
    import psycopg2
    from psycopg2 import sql

    admin = {**params, "dbname": "postgres"}
    if not admin["password"]:
        admin.pop("password")
    conn = psycopg2.connect(**admin)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created PostgreSQL database {name}")
            return True
    finally:
        conn.close()


def switch_database(name: str) -> None:
    """Point the default connection at another PostgreSQL database (created, migrated)."""
    from django.db import connection

    params = _postgres_params(os.environ["DATABASE_URL"])
    if params is None:
        raise SystemExit("switch_database needs a PostgreSQL DATABASE_URL")
    create_postgres_database(name, params)
    connection.close()
    connection.settings_dict["NAME"] = name
    migrate()


def describe_database() -> str:
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        return (
            f"PostgreSQL {version}, database {settings['NAME']} "
            f"at {settings.get('HOST') or 'local socket'}:{settings.get('PORT') or 5432}"
        )
    return f"{connection.vendor} {settings['NAME']}"


def machine() -> str:
    try:
        mem = subprocess.run(["free", "-g"], capture_output=True, text=True, check=False)
        total = mem.stdout.splitlines()[1].split()[1] + " GiB RAM"
    except (OSError, IndexError):
        total = "? RAM"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {total}, Python {platform.python_version()}, load {load}"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- Reporting -----------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first, *rest = row
        return "  ".join(
            [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        )

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def verdict(checks: list[tuple[str, bool]]) -> int:
    """Print each check and return the exit status: 0 when every target is met."""
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    failed = [name for name, ok in checks if not ok]
    return 1 if failed else 0


def finish(status: int) -> None:
    sys.stdout.flush()
    sys.exit(status)


# --- Synthetic GitHub repository objects ---------------------------------------------------

# Glue words of English descriptions: frequent, never used as search terms (a description
# is content words drawn by rank, with glue words between some of them).
GLUE = ["a", "the", "for", "and", "of", "to", "with", "in", "your", "on", "an", "from", "using",
        "that", "by", "is", "my", "as", "it", "this", "at", "or", "into", "via", "all", "over"]  # fmt: skip

# Description vocabulary, roughly most frequent first (drawn with Zipf weights by rank).
_CONTENT = """
library python api simple tool app framework javascript react data web project application
server client plugin node example code based implementation fast open source go rust cli
lightweight java learning machine golang docker kubernetes game android ios command line
interface management system engine parser generator manager wrapper sdk bot discord telegram
chat service platform cloud aws azure google config configuration dotfiles personal website
blog static site theme template boilerplate starter kit ui components component design css
html typescript vue angular svelte nextjs django flask fastapi rails laravel spring boot
express graphql rest grpc http websocket database sql postgres mysql sqlite redis mongodb orm
query cache queue worker async concurrent parallel distributed scalable realtime stream
streaming pipeline workflow automation testing test unit integration benchmark performance
monitoring logging metrics tracing observability security authentication auth oauth jwt
encryption crypto blockchain ethereum wallet smart contract neural network deep model models
training inference dataset datasets vision image images video audio speech text nlp language
transformer llm gpt embedding search index vector analysis analytics visualization dashboard
chart charts graph plotting scientific computing numerical math algorithm algorithms
structures solutions leetcode interview course tutorial tutorials notes book examples awesome
list curated collection resources guide documentation docs markdown editor terminal shell
scripts script utilities utils helpers extension extensions vscode vim neovim emacs browser
chrome firefox mobile flutter native cross desktop electron linux windows macos embedded
firmware arduino raspberry iot robot robotics ros simulation physics compiler interpreter
runtime virtual emulator operating kernel driver memory storage file files filesystem backup
sync migration schema validation serialization json yaml xml csv format formatter linter
analyzer type types checker package packages build deploy deployment infrastructure terraform
ansible helm operator controller proxy gateway router routing load balancer dns email
notification notifications scheduler cron task tasks job jobs event events driven
microservices architecture clean hexagonal minimal modern tiny small high efficient secure
reliable robust flexible extensible modular declarative functional reactive immutable generic
typed safe zero dependency free unofficial official port clone fork alternative replacement
inspired written built powered support supports featuring easy quick production ready
experimental work progress hobby school university homework assignment final portfolio
resume landing page ecommerce shop store payment stripe finance trading stock weather map
maps geospatial location music player spotify youtube twitter reddit github gitlab actions ci
git hooks slack scraper crawler scraping downloader converter compression resize pdf excel
spreadsheet calendar todo tracker habit budget expense inventory booking hotel restaurant food
recipe fitness health medical education quiz survey forum social media chatbot assistant voice
translation ocr detection object face recognition segmentation classification regression
clustering reinforcement agent agents multi evaluation paper pytorch tensorflow keras numpy
pandas jax huggingface openai langchain rag prompt fine tuning distillation quantization
"""
CONTENT = list(dict.fromkeys(_CONTENT.split()))

TOPICS = [
    "python", "javascript", "react", "machine-learning", "deep-learning", "nodejs", "typescript",
    "golang", "rust", "docker", "kubernetes", "api", "cli", "web", "android", "ios", "flutter",
    "django", "flask", "fastapi", "vue", "angular", "nextjs", "tailwindcss", "css", "html", "java",
    "spring-boot", "kotlin", "swift", "linux", "devops", "aws", "terraform", "database",
    "postgresql", "mysql", "mongodb", "redis", "graphql", "rest-api", "microservices", "security",
    "cryptography", "blockchain", "ethereum", "game", "game-development", "unity", "pytorch",
    "tensorflow", "nlp", "computer-vision", "llm", "chatgpt", "openai", "data-science",
    "data-visualization", "automation", "bot", "discord-bot", "telegram-bot", "hacktoberfest",
    "awesome", "awesome-list", "tutorial", "education", "productivity", "neovim", "vim",
    "dotfiles", "shell", "bash", "zsh", "terminal", "raspberry-pi", "arduino", "iot", "robotics",
    "embedded", "compiler", "parser", "emulator", "self-hosted", "monitoring", "testing",
    "open-source", "library", "framework", "sdk", "wasm", "webassembly", "electron",
    "chrome-extension", "vscode-extension", "github-actions", "ci-cd", "serverless", "firebase",
    "supabase", "stripe", "ecommerce", "finance", "trading", "music", "video", "image-processing",
    "pdf", "scraper", "web-scraping", "json", "yaml", "markdown", "static-site-generator", "hugo",
    "jekyll", "blog", "portfolio"
]  # fmt: skip

LANGUAGES = {
    "JavaScript": 14, "Python": 14, "TypeScript": 10, "Java": 9, "C++": 6, "Go": 5, "C#": 5,
    "PHP": 5, "C": 4, "Jupyter Notebook": 4, "HTML": 4, "Ruby": 3, "Shell": 3, "Rust": 3,
    "CSS": 2, "Kotlin": 2, "Swift": 2, "Dart": 1.5, "Vue": 1.5, "Objective-C": 0.8, "R": 0.8,
    "Scala": 0.7, "Lua": 0.6, "PowerShell": 0.5, "Dockerfile": 0.5, "Haskell": 0.4,
    "Elixir": 0.4, "Perl": 0.3, "Vim Script": 0.3, "TeX": 0.3, "Svelte": 0.3, "Solidity": 0.3,
    "HCL": 0.3, "Clojure": 0.2, "Julia": 0.2, "Makefile": 0.2, "Erlang": 0.15, "OCaml": 0.15,
    "Zig": 0.1, "Nix": 0.1, None: 10,
}  # fmt: skip

LICENSES = {
    "MIT": ("mit", "MIT License", 45),
    "Apache-2.0": ("apache-2.0", "Apache License 2.0", 15),
    "GPL-3.0": ("gpl-3.0", "GNU General Public License v3.0", 8),
    "BSD-3-Clause": ("bsd-3-clause", 'BSD 3-Clause "New" or "Revised" License', 4),
    "GPL-2.0": ("gpl-2.0", "GNU General Public License v2.0", 2.5),
    "BSD-2-Clause": ("bsd-2-clause", 'BSD 2-Clause "Simplified" License', 1.5),
    "AGPL-3.0": ("agpl-3.0", "GNU Affero General Public License v3.0", 1.5),
    "MPL-2.0": ("mpl-2.0", "Mozilla Public License 2.0", 1.2),
    "Unlicense": ("unlicense", "The Unlicense", 1.2),
    "LGPL-3.0": ("lgpl-3.0", "GNU Lesser General Public License v3.0", 1),
    "ISC": ("isc", "ISC License", 0.8),
    "CC0-1.0": ("cc0-1.0", "Creative Commons Zero v1.0 Universal", 0.8),
    "NOASSERTION": ("other", "Other", 3),
    None: (None, None, 15),
}

_SYLLABLES = [
    "ka", "ri", "to", "mo", "zen", "ax", "el", "an", "jo", "vi", "da", "sa", "ne", "lu", "mi",
    "ko", "ra", "te", "no", "be", "li", "ha", "yu", "qi", "tor", "vin", "dex", "mar", "sol", "kai",
    "ren", "jin", "bo", "fa", "gu", "ix", "oz", "wu"
]  # fmt: skip
_ORG_SUFFIXES = ["labs", "hq", "io", "dev", "team", "org", "ai", "tech", "oss", "inc"]
_BRANCHES = {"main": 70, "master": 27, "develop": 2, "trunk": 0.5, "gh-pages": 0.5}
_EPOCH = datetime(2010, 1, 1, tzinfo=UTC)
_NOW = datetime(2026, 11, 1, tzinfo=UTC)


def zipf_cum_weights(n: int, exponent: float = 1.0, offset: float = 0.0) -> list[float]:
    """Cumulative Zipf(-Mandelbrot) weights 1 / (rank + 1 + offset) ** exponent."""
    total, cum = 0.0, []
    for rank in range(n):
        total += 1 / (rank + 1 + offset) ** exponent
        cum.append(total)
    return cum


def topic_cum_weights() -> list[float]:
    """Topic popularity: the most used topic is on about 7% of repositories."""
    return zipf_cum_weights(len(TOPICS), 1.0, 5)


class RepositoryFactory:
    """GitHub API repository objects, the same for the same seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
        # A flattened head, as in real descriptions: the most frequent content word is in
        # about 9% of them, a word of the rarer half in well under 1%.
        self.word_cum = zipf_cum_weights(len(CONTENT), 1.0, 20)
        self.glue_cum = zipf_cum_weights(len(GLUE), 1.0)
        self.topic_cum = topic_cum_weights()
        self.seen: set[str] = set()
        self.owners: list[tuple[str, str]] = []

    def _owner(self) -> tuple[str, str]:
        rng = self.rng
        if rng.random() < 0.15:
            base = rng.choice(CONTENT)
            login = f"{base}-{rng.choice(_ORG_SUFFIXES)}" if rng.random() < 0.5 else base
            kind = "Organization"
        else:
            login = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
            if rng.random() < 0.3:
                login += str(rng.randint(1, 9999))
            if rng.random() < 0.15:
                login = f"{login}-{rng.choice(CONTENT)}"
            if rng.random() < 0.3:
                login = login.capitalize()
            kind = "User"
        return login[:39].strip("-"), kind

    def _repo_name(self, language: str | None) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            return rng.choice(["dotfiles", "notes", "blog", "homework", "config", "scripts"])
        parts = [rng.choice(CONTENT) for _ in range(rng.choice((1, 1, 2, 2, 2, 3)))]
        if roll < 0.55:
            name = "-".join(parts)
        elif roll < 0.70:
            name = "_".join(parts)
        elif roll < 0.85:
            name = "".join(p.capitalize() for p in parts)
        elif roll < 0.90:
            name = ".".join(parts)
        else:
            name = "".join(parts)
        if language == "Python" and rng.random() < 0.1:
            name = f"py{name}" if rng.random() < 0.5 else f"{name}-py"
        elif language in ("JavaScript", "TypeScript") and rng.random() < 0.1:
            name = f"{name}.js"
        return name

    def _description(self) -> str | None:
        rng = self.rng
        if rng.random() < 0.08:
            return None
        words: list[str] = []
        for word in rng.choices(CONTENT, cum_weights=self.word_cum, k=rng.randint(2, 10)):
            if words and rng.random() < 0.4:
                words.append(rng.choices(GLUE, cum_weights=self.glue_cum)[0])
            words.append(word)
        text = " ".join(words)
        return text[0].upper() + text[1:] + ("." if rng.random() < 0.3 else "")

    def _date(self, low: datetime, skew: float) -> datetime:
        span = (_NOW - low).total_seconds()
        return low + timedelta(seconds=int(span * (1 - self.rng.random() ** skew)))

    def make(self, index: int) -> dict:
        rng = self.rng
        # Long tail of owners: most have one repository, a few have hundreds.
        if self.owners and rng.random() < 0.55:
            owner, kind = self.owners[int(len(self.owners) * rng.random() ** 3)]
        else:
            owner, kind = self._owner()
            self.owners.append((owner, kind))
        language = rng.choices(list(LANGUAGES), weights=list(LANGUAGES.values()))[0]
        name = self._repo_name(language)[:100]
        full_name = f"{owner}/{name}"
        suffix = 1
        while full_name.lower() in self.seen:
            suffix += 1
            full_name = f"{owner}/{name}-{suffix}"
        self.seen.add(full_name.lower())
        spdx = rng.choices(list(LICENSES), weights=[v[2] for v in LICENSES.values()])[0]
        key, license_name, _ = LICENSES[spdx]
        topics: list[str] = []
        if rng.random() < 0.45:
            count = rng.randint(1, 6)
            topics = list(dict.fromkeys(rng.choices(TOPICS, cum_weights=self.topic_cum, k=count)))
        stars = min(int(rng.paretovariate(0.75)) - 1, 450_000)
        created = self._date(_EPOCH, 1.0)
        pushed = self._date(created, 2.0)
        iso = "%Y-%m-%dT%H:%M:%SZ"
        repo_id = 10_000_000 + index * 37
        return {
            "id": repo_id,
            "node_id": f"R_kgDO{repo_id:08X}",
            "name": full_name.split("/", 1)[1],
            "full_name": full_name,
            "private": False,
            "owner": {"login": owner, "id": 1000 + len(self.owners), "type": kind},
            "html_url": f"https://github.com/{full_name}",
            "description": self._description(),
            "fork": rng.random() < 0.05,
            "url": f"https://api.github.com/repos/{full_name}",
            "clone_url": f"https://github.com/{full_name}.git",
            "homepage": None,
            "size": min(int(rng.lognormvariate(7, 2.2)), 2**31 - 1),
            "stargazers_count": stars,
            "watchers_count": stars,
            "language": language,
            "forks_count": int(stars * rng.random() * 0.3),
            "archived": rng.random() < 0.05,
            "disabled": False,
            "open_issues_count": int(rng.paretovariate(1.2)) - 1,
            "license": {"key": key, "name": license_name, "spdx_id": spdx} if spdx else None,
            "topics": topics,
            "visibility": "public",
            "default_branch": rng.choices(list(_BRANCHES), weights=list(_BRANCHES.values()))[0],
            "created_at": created.strftime(iso),
            "updated_at": pushed.strftime(iso),
            "pushed_at": pushed.strftime(iso),
        }


def github_repositories(count: int, *, seed: int) -> list[dict]:
    factory = RepositoryFactory(seed)
    return [factory.make(i) for i in range(count)]


def github_jsonl(count: int, *, seed: int) -> bytes:
    """The same objects as github_repositories, as JSONL, never all held as dicts at once."""
    factory = RepositoryFactory(seed)
    return "".join(
        json.dumps(factory.make(i), separators=(",", ":")) + "\n" for i in range(count)
    ).encode()


def jsonl(objects: list[dict]) -> bytes:
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects).encode()
