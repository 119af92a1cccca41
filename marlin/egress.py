"""Network for a sandbox, to named hosts only: a CONNECT proxy outside, a forwarder inside.

A sandboxed command that must reach a package index (a check recipe's setup) keeps its own
empty network namespace: it cannot reach 127.0.0.1, the database, the broker or anything on
the worker's network. Instead a forwarder inside the sandbox listens on its private
loopback and passes each connection through a Unix socket to `EgressProxy`, which runs in
the worker, accepts only `CONNECT host:port` to an allowed host and port, resolves the name
itself and refuses any address that is not public (so a name pointing at 127.0.0.1 or a
private network is no way around it), then splices the bytes. TLS stays end to end.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import selectors
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

logger = logging.getLogger(__name__)

# Inside the sandbox: where the proxy's folder is mounted and where the forwarder listens.
SANDBOX_DIR = "/sandbox/egress"
SOCKET_NAME = "proxy.sock"
LISTEN_PORT = 3128
PROXY_URL = f"http://127.0.0.1:{LISTEN_PORT}"
MAX_REQUEST_HEAD = 8192
CONNECT_TIMEOUT = 15
IDLE_TIMEOUT = 120

# Run by the sandbox's shell in the background before the command: python3 is on every
# system image Marlin runs on; it needs nothing but the standard library.
FORWARDER = f"""
import socket, sys, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {LISTEN_PORT}))
server.listen(64)
open(sys.argv[2], "w").close()
def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for end in (src, dst):
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    client, _ = server.accept()
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(sys.argv[1])
    except OSError:
        client.close()
        continue
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"""


def environment() -> dict[str, str]:
    """The variables that send pip, npm, cargo and curl through the forwarder."""
    return {name: PROXY_URL for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """`pypi.org` allows exactly that host; `.example.org` allows its subdomains."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().strip()
        if entry.startswith(".") and host.endswith(entry) and host != entry[1:]:
            return True
        if host == entry:
            return True
    return False


def reachable_addresses(host: str, port: int, *, networks: Sequence[str] = ()) -> list[tuple]:
    """Every address `host` resolves to, or [] if any of them may not be reached: only public
    addresses, and those in `networks` (an internal package mirror); never the loopback,
    link-local or unspecified addresses, whatever `networks` says."""
    extra = [ipaddress.ip_network(network, strict=False) for network in networks]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            return []
        if not (address.is_global or any(address in network for network in extra)):
            return []
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


class EgressProxy:
    """A CONNECT proxy on a Unix socket, for one sandboxed command; a context manager."""

    def __init__(
        self, allowed_hosts: Sequence[str], *, ports: Sequence[int] = (443,),
        networks: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.allowed_hosts = list(allowed_hosts)
        self.networks = list(networks)
        self.ports = set(ports)
        self.folder = Path(tempfile.mkdtemp(prefix="marlin-egress-"))
        self.socket_path = self.folder / SOCKET_NAME
        self.refused: list[str] = []
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def __enter__(self) -> EgressProxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        # The sandbox runs under whichever uid of the pool is free (marlin/sandbox.py), so
        # any uid may connect: the proxy grants nothing a local user lacks (allowed public
        # hosts only), and the folder can be crossed, not listed.
        os.chmod(self.socket_path, 0o666)  # noqa: S103
        os.chmod(self.folder, 0o711)  # noqa: S103
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, name="egress-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for conn in list(self._open):
                _close(conn)
            self._open.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(CONNECT_TIMEOUT)
            target = self._read_connect(client)
            if target is None:
                return
            host, port = target
            upstream = self._open_upstream(host, port)
            if upstream is None:
                self.refused.append(f"{host}:{port}")
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            self._track(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _splice(client, upstream)
        except OSError as exc:
            logger.info("egress connection ended: %s", exc)
        finally:
            for conn in (client, upstream):
                if conn is not None:
                    _close(conn)
                    with self._lock:
                        self._open.discard(conn)

    def _read_connect(self, client: socket.socket) -> tuple[str, int] | None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(1024)
            if not chunk or len(head) + len(chunk) > MAX_REQUEST_HEAD:
                return None
            head += chunk
        request = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request) != 3 or request[0] != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return None
        host, _, port_text = request[1].rpartition(":")
        if not port_text.isdigit():
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return None
        return host.strip("[]"), int(port_text)

    def _open_upstream(self, host: str, port: int) -> socket.socket | None:
        if port not in self.ports or not host_allowed(host, self.allowed_hosts):
            return None
        try:
            addresses = reachable_addresses(host, port, networks=self.networks)
        except OSError:
            return None
        for family, sockaddr in addresses:
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.settimeout(CONNECT_TIMEOUT)
            try:
                upstream.connect(sockaddr)
                return upstream
            except OSError:
                upstream.close()
        return None


def _splice(one: socket.socket, other: socket.socket) -> None:
    one.settimeout(None)
    other.settimeout(None)
    with selectors.DefaultSelector() as selector:
        selector.register(one, selectors.EVENT_READ, other)
        selector.register(other, selectors.EVENT_READ, one)
        while True:
            ready = selector.select(IDLE_TIMEOUT)
            if not ready:
                return
            for key, _ in ready:
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)


def _close(conn: socket.socket) -> None:
    with suppress(OSError):  # the other end may be gone already
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
