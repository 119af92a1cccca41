"""Fake model APIs on the loopback that the official `anthropic` and `openai` clients talk to.

Each server speaks the real wire protocol closely enough that the unmodified client libraries
work against it: Anthropic's Messages API (``POST /v1/messages``) and OpenAI's Chat Completions
(``POST /v1/chat/completions``), with each vendor's success and error JSON shapes. Stdlib only.

Every request is recorded (``server.requests``) and answered from a script: a queue of
behaviours consumed one per request, then ``default`` for every request after that::

    with FakeAnthropicServer(default=ok("hello")) as server:
        server.enqueue(status(429, retry_after=2), delay(2, then=ok("late")), malformed())
        client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
        ...
        assert server.requests[0].body["model"] == "some-model"

Behaviours: ``ok(text)`` (``text`` may be a callable taking the parsed request body and
returning the answer text), ``status(code, retry_after=None, message=...)``,
``delay(seconds, then=ok(...))``, ``malformed()`` (200 with a body that is not JSON) and
``empty()`` (a well-formed answer with no text). A request without the credential header the
real API requires is refused with 401, whatever the script says (it is still recorded).

``base_url`` is what to hand the client: for Anthropic the server root (the client appends
``/v1/messages``), for OpenAI the root plus ``/v1`` (the client appends ``/chat/completions``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

AnswerText = str | Callable[[dict[str, Any]], str]


def fake_token_count(value: Any) -> int:
    """A stand-in for a tokenizer: about four characters of JSON per token, at least one."""
    return max(1, len(json.dumps(value)) // 4)


# --- behaviours ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    text: AnswerText
    stop_reason: str = ""  # "" → the vendor's normal value ("end_turn" / "stop")


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: float | str | None = None
    message: str = ""
    error_type: str = ""  # "" → the vendor's type for the status code


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Behaviour


@dataclass(frozen=True)
class Malformed:
    body: bytes = b"<html>this is not JSON {"


@dataclass(frozen=True)
class Empty:
    pass


Behaviour = Ok | Status | Delay | Malformed | Empty


def ok(text: AnswerText, *, stop_reason: str = "") -> Ok:
    """A normal answer with `text` (or `text(request_body)` if it is callable)."""
    return Ok(text, stop_reason)


def status(
    code: int, retry_after: float | str | None = None, *, message: str = "", error_type: str = ""
) -> Status:
    """An HTTP error in the vendor's error shape; `retry_after` sets the Retry-After header."""
    return Status(code, retry_after, message, error_type)


def delay(seconds: float, then: Behaviour | None = None) -> Delay:
    """Wait `seconds` before behaving as `then` (default: an ordinary answer)."""
    return Delay(seconds, then if then is not None else ok("a late answer"))


def malformed(body: bytes = b"<html>this is not JSON {") -> Malformed:
    """200 with a JSON content type and a body that does not parse."""
    return Malformed(body)


def empty() -> Empty:
    """A well-formed answer holding no text (Anthropic: no content blocks; OpenAI: "")."""
    return Empty()


# --- recording -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    raw_body: bytes
    body: Any  # the parsed JSON body, or None if it was not JSON
    # time.monotonic() on arrival, to measure the gaps a client leaves between requests
    received_at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


# --- the servers ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection's thread gives up after this

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeModelServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeModelServer:
    """The shared machinery: lifecycle, recording, the script. Subclasses speak one API."""

    endpoint_path: ClassVar[str]
    api_prefix: ClassVar[str] = ""  # appended to the root to make `base_url`
    _ids = itertools.count(1)

    def __init__(self, default: Behaviour | Callable[[dict[str, Any]], str] | None = None) -> None:
        self._lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.default: Behaviour = ok("OK") if default is None else _as_behaviour(default)

    # lifecycle

    def start(self) -> FakeModelServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes any delayed reply
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What the vendor's client wants as base_url."""
        return self.root_url + self.api_prefix

    # the script

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order, then fall back to default."""
        with self._lock:
            self._script.extend(behaviours)

    def set_default(self, default: Behaviour | Callable[[dict[str, Any]], str]) -> None:
        with self._lock:
            self.default = _as_behaviour(default)

    def reset(self) -> None:
        """Forget recorded requests and any behaviours still queued."""
        with self._lock:
            self._script.clear()
            self._requests.clear()

    @property
    def pending(self) -> int:
        """How many queued behaviours have not been used yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the fake server received no request")
            return self._requests[-1]

    # vendor specifics

    def _auth_problem(self, request: RecordedRequest) -> str:
        """Why the request's credentials are unacceptable, or ""."""
        raise NotImplementedError

    def _success(self, request: RecordedRequest, text: str, stop_reason: str) -> dict[str, Any]:
        raise NotImplementedError

    def _empty(self, request: RecordedRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _error(self, code: int, message: str, error_type: str) -> dict[str, Any]:
        raise NotImplementedError

    def _request_id_header(self) -> tuple[str, str]:
        raise NotImplementedError

    # request handling

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            raw_body=raw,
            body=body,
        )
        with self._lock:
            self._requests.append(request)
        reply = self._reply_for(request)
        if reply is None:  # stopped while delaying
            handler.close_connection = True
            return
        name, value = self._request_id_header()
        headers = {"Content-Type": "application/json", name: value, **reply.headers}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(reply.status)
            for key, val in headers.items():
                handler.send_header(key, val)
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
            handler.wfile.flush()

    def _reply_for(self, request: RecordedRequest) -> _Reply | None:
        if request.method != "POST" or request.path.split("?")[0] != self.endpoint_path:
            return self._json_error(404, f"Not found: {request.method} {request.path}", "")
        problem = self._auth_problem(request)
        if problem:
            return self._json_error(401, problem, "")
        if not isinstance(request.body, dict):
            return self._json_error(400, "The request body is not a JSON object.", "")
        behaviour = self._next_behaviour()
        while isinstance(behaviour, Delay):
            if self._stopping.wait(behaviour.seconds):
                return None
            behaviour = behaviour.then
        if isinstance(behaviour, Ok):
            text = behaviour.text(request.body) if callable(behaviour.text) else behaviour.text
            return _Reply(200, _dump(self._success(request, text, behaviour.stop_reason)))
        if isinstance(behaviour, Empty):
            return _Reply(200, _dump(self._empty(request)))
        if isinstance(behaviour, Malformed):
            return _Reply(200, behaviour.body)
        reply = self._json_error(
            behaviour.code,
            behaviour.message or f"Fake error {behaviour.code}",
            behaviour.error_type,
        )
        if behaviour.retry_after is not None:
            value = behaviour.retry_after
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            reply.headers["Retry-After"] = str(value)
        return reply

    def _json_error(self, code: int, message: str, error_type: str) -> _Reply:
        return _Reply(code, _dump(self._error(code, message, error_type)))

    def _new_id(self) -> int:
        return next(self._ids)


class FakeAnthropicServer(FakeModelServer):
    """Anthropic's Messages API. `base_url` is the root: the client adds ``/v1/messages``."""

    endpoint_path = "/v1/messages"
    api_prefix = ""
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }

    def _auth_problem(self, request: RecordedRequest) -> str:
        if not request.header("x-api-key") and not request.header("authorization"):
            return "x-api-key header is required"
        if not request.header("anthropic-version"):
            return "anthropic-version header is required"
        return ""

    def _reply_for(self, request: RecordedRequest) -> _Reply | None:
        body = request.body
        if (
            request.path.split("?")[0] == self.endpoint_path
            and isinstance(body, dict)
            and not self._auth_problem(request)
        ):
            missing = [key for key in ("model", "max_tokens", "messages") if key not in body]
            if missing:
                return self._json_error(400, f"{missing[0]}: Field required", "")
        return super()._reply_for(request)

    def _success(self, request: RecordedRequest, text: str, stop_reason: str) -> dict[str, Any]:
        return self._message(request, [{"type": "text", "text": text}], stop_reason or "end_turn")

    def _empty(self, request: RecordedRequest) -> dict[str, Any]:
        return self._message(request, [], "end_turn")

    def _message(
        self, request: RecordedRequest, content: list[dict[str, Any]], stop_reason: str
    ) -> dict[str, Any]:
        return {
            "id": f"msg_fake{self._new_id():06d}",
            "type": "message",
            "role": "assistant",
            "model": request.body.get("model", ""),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": fake_token_count(request.body.get("messages")),
                "output_tokens": fake_token_count(content),
            },
        }

    def _error(self, code: int, message: str, error_type: str) -> dict[str, Any]:
        kind = error_type or self.ERROR_TYPES.get(code, "api_error" if code >= 500 else "")
        return {
            "type": "error",
            "error": {"type": kind or "invalid_request_error", "message": message},
        }

    def _request_id_header(self) -> tuple[str, str]:
        return "request-id", f"req_fake{self._new_id():06d}"


class FakeOpenAIServer(FakeModelServer):
    """OpenAI's Chat Completions. `base_url` ends in ``/v1``: the client adds the rest."""

    endpoint_path = "/v1/chat/completions"
    api_prefix = "/v1"
    ERROR_TYPES: ClassVar[dict[int, tuple[str, str | None]]] = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("invalid_request_error", "unsupported_country_region_territory"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
        500: ("server_error", None),
        503: ("server_error", None),
    }

    def _auth_problem(self, request: RecordedRequest) -> str:
        auth = request.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "You didn't provide an API key (Authorization: Bearer ...)."
        return ""

    def _reply_for(self, request: RecordedRequest) -> _Reply | None:
        body = request.body
        if (
            request.path.split("?")[0] == self.endpoint_path
            and isinstance(body, dict)
            and not self._auth_problem(request)
        ):
            missing = [key for key in ("model", "messages") if key not in body]
            if missing:
                return self._json_error(400, f"Missing required parameter: '{missing[0]}'.", "")
        return super()._reply_for(request)

    def _success(self, request: RecordedRequest, text: str, stop_reason: str) -> dict[str, Any]:
        return self._completion(request, text, stop_reason or "stop")

    def _empty(self, request: RecordedRequest) -> dict[str, Any]:
        return self._completion(request, "", "stop")

    def _completion(
        self, request: RecordedRequest, text: str, finish_reason: str
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{self._new_id():06d}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": request.body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": fake_token_count(request.body.get("messages")),
                "completion_tokens": fake_token_count(text),
                "total_tokens": fake_token_count(request.body.get("messages"))
                + fake_token_count(text),
            },
        }

    def _error(self, code: int, message: str, error_type: str) -> dict[str, Any]:
        default_type, error_code = self.ERROR_TYPES.get(
            code, ("server_error" if code >= 500 else "invalid_request_error", None)
        )
        return {
            "error": {
                "message": message,
                "type": error_type or default_type,
                "param": None,
                "code": error_code,
            }
        }

    def _request_id_header(self) -> tuple[str, str]:
        return "x-request-id", f"req_fake{self._new_id():06d}"


def _as_behaviour(value: Behaviour | Callable[[dict[str, Any]], str]) -> Behaviour:
    if isinstance(value, Ok | Status | Delay | Malformed | Empty):
        return value
    if callable(value):
        return ok(value)
    raise TypeError(f"not a behaviour: {value!r}")


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


__all__ = [
    "Behaviour",
    "FakeAnthropicServer",
    "FakeModelServer",
    "FakeOpenAIServer",
    "RecordedRequest",
    "delay",
    "empty",
    "malformed",
    "ok",
    "status",
]
