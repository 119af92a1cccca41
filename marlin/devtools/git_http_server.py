"""Serve bare git repositories over git's smart HTTP protocol on the loopback.

Requests are handed to git's own CGI program, ``git http-backend``, so clients talk to exactly
the protocol implementation a real git host speaks. Stdlib only; must not import Django.

Usage::

    python -m marlin.devtools.git_http_server --root DIR [--host 127.0.0.1] [--port 8765]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

_COPY_CHUNK = 64 * 1024

# Config handed to the backend through GIT_CONFIG_COUNT so the served repos need no setup.
_BACKEND_CONFIG: tuple[tuple[str, str], ...] = (
    ("uploadpack.allowFilter", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)


def _http_backend_path() -> str:
    exec_path = subprocess.run(
        ["git", "--exec-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


class _GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, backend: str) -> None:
        self.root = root
        self.backend = backend
        super().__init__(address, _GitRequestHandler)


class _GitRequestHandler(BaseHTTPRequestHandler):
    server: _GitHTTPServer
    # HTTP/1.0: the response body ends when the connection closes, so the backend's output can
    # be streamed without knowing its length or implementing chunked encoding.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._run_backend()

    def do_POST(self) -> None:
        self._run_backend()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _cgi_env(self, content_length: int | None) -> dict[str, str]:
        url = urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", str(self.server.root)),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_SOFTWARE": self.version_string(),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(url.path),
            "QUERY_STRING": url.query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if content_length is not None:
            env["CONTENT_LENGTH"] = str(content_length)
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        if protocol := self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = protocol
        env["GIT_CONFIG_COUNT"] = str(len(_BACKEND_CONFIG))
        for index, (key, value) in enumerate(_BACKEND_CONFIG):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    def _run_backend(self) -> None:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        content_length: int | None = None
        if not chunked:
            content_length = int(self.headers.get("Content-Length") or 0)

        # Without CONTENT_LENGTH the backend reads stdin to EOF, which is what a chunked
        # (length-unknown) request body needs.
        proc = subprocess.Popen(
            [self.server.backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._cgi_env(content_length),
            cwd=self.server.root,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        # Feed stdin and drain stderr in threads while stdout is read here, so none of the three
        # pipes can fill up and deadlock the backend.
        writer = threading.Thread(
            target=self._feed_body, args=(proc.stdin, content_length), daemon=True
        )
        stderr_reader = threading.Thread(target=self._log_stderr, args=(proc.stderr,), daemon=True)
        writer.start()
        stderr_reader.start()
        try:
            self._relay_response(proc.stdout)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("client went away during %s %s", self.command, self.path)
        finally:
            proc.stdout.close()
            writer.join()
            stderr_reader.join()
            returncode = proc.wait()
            if returncode:
                logger.debug("git http-backend exited with %s for %s", returncode, self.path)

    def _feed_body(self, stdin: IO[bytes], content_length: int | None) -> None:
        try:
            if content_length is None:
                self._copy_chunked_body(stdin)
            else:
                remaining = content_length
                while remaining > 0:
                    data = self.rfile.read(min(remaining, _COPY_CHUNK))
                    if not data:
                        break
                    stdin.write(data)
                    remaining -= len(data)
        except (BrokenPipeError, ConnectionResetError, ValueError):
            # The backend may exit (e.g. 404) without reading its input.
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def _copy_chunked_body(self, stdin: IO[bytes]) -> None:
        while True:
            size_line = self.rfile.readline()
            if not size_line:
                return
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Skip trailers up to the terminating blank line.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            remaining = size
            while remaining > 0:
                data = self.rfile.read(min(remaining, _COPY_CHUNK))
                if not data:
                    return
                stdin.write(data)
                remaining -= len(data)
            self.rfile.readline()

    def _log_stderr(self, stderr: IO[bytes]) -> None:
        for line in stderr:
            logger.debug("git http-backend: %s", line.decode(errors="replace").rstrip())

    def _relay_response(self, stdout: IO[bytes]) -> None:
        status = HTTPStatus.OK.value
        reason: str | None = None
        headers: list[tuple[str, str]] = []
        saw_header_end = False
        for raw in iter(stdout.readline, b""):
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line:
                saw_header_end = True
                break
            name, _, value = line.partition(":")
            value = value.strip()
            if name.strip().lower() == "status":
                code, _, reason_text = value.partition(" ")
                status = int(code)
                reason = reason_text or None
            else:
                headers.append((name.strip(), value))

        if not saw_header_end:
            self.send_error(HTTPStatus.BAD_GATEWAY, "git http-backend produced no response")
            return

        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        shutil.copyfileobj(stdout, self.wfile, _COPY_CHUNK)
        self.wfile.flush()


class GitHttpServer:
    """A loopback HTTP server exposing the bare repositories under ``root`` to git clients.

    The repository at ``root/owner/name.git`` is reachable at ``f"{base_url}/owner/name.git"``.
    Every request runs ``git http-backend`` with upload-pack configured to allow partial clones
    (``--filter``) and fetching any object id. Serving happens in a daemon thread between
    ``start()`` and ``stop()``; the server is also a context manager doing both.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self._server: _GitHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @cached_property
    def _backend(self) -> str:
        return _http_backend_path()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("GitHttpServer is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("GitHttpServer is already running")
        self._server = _GitHTTPServer((self.host, self.port), self.root, self._backend)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name=f"git-http-server:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("serving %s at %s", self.root, self.base_url)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> GitHttpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve bare git repositories over smart HTTP via git http-backend."
    )
    parser.add_argument("--root", type=Path, required=True, help="directory of owner/name.git")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    server = GitHttpServer(args.root, host=args.host, port=args.port)
    stopping = threading.Event()
    # Installed explicitly: a backgrounded process inherits SIGINT as ignored, and a process
    # manager stops us with SIGTERM; both should shut the server down cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    server.start()
    print(server.base_url, flush=True)
    try:
        stopping.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
