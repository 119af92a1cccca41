"""marlin/egress.py: a sandbox reaches the allowed hosts only, and never the loopback."""

from __future__ import annotations

import socket

import pytest
from django.conf import settings

from marlin import egress, sandbox


def _connect(proxy: egress.EgressProxy, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(20)
        client.connect(str(proxy.socket_path))
        try:
            client.sendall(request)
            return client.recv(200)
        except (ConnectionResetError, BrokenPipeError):  # the proxy hung up first
            return b""


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("pypi.org", True),
        ("PyPI.org.", True),
        ("evil-pypi.org", False),
        ("pypi.org.evil.com", False),
        ("files.pythonhosted.org", True),
        ("mirror.example.org", True),
        ("example.org", False),
    ],
)
def test_only_the_named_hosts_and_subdomains_of_dotted_entries_are_allowed(host, allowed):
    entries = ["pypi.org", "files.pythonhosted.org", ".example.org"]
    assert egress.host_allowed(host, entries) is allowed


def test_the_loopback_is_never_reachable_whatever_the_networks_setting_says():
    assert egress.reachable_addresses("localhost", 443, networks=["127.0.0.0/8"]) == []
    assert egress.reachable_addresses("127.0.0.1", 5432, networks=["0.0.0.0/0"]) == []
    assert egress.reachable_addresses("10.1.2.3", 443) == []
    assert egress.reachable_addresses("10.1.2.3", 443, networks=["10.0.0.0/8"]) != []


@pytest.mark.parametrize(
    ("request_line", "answer"),
    [
        (b"CONNECT localhost:443 HTTP/1.1", b"403"),  # allowed by name, but the loopback
        (b"CONNECT 127.0.0.1:6379 HTTP/1.1", b"403"),
        (b"CONNECT pypi.org:22 HTTP/1.1", b"403"),  # an allowed host, another port
        (b"CONNECT example.com:443 HTTP/1.1", b"403"),
        (b"GET http://pypi.org/ HTTP/1.1", b"405"),
        (b"CONNECT pypi.org HTTP/1.1", b"400"),
    ],
)
def test_the_proxy_refuses_what_it_may_not_open(request_line, answer):
    with egress.EgressProxy(["pypi.org", "localhost", "127.0.0.1"],
                            networks=["127.0.0.0/8"]) as proxy:  # fmt: skip
        reply = _connect(proxy, request_line + b"\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 " + answer), reply


def test_an_oversized_request_head_is_dropped():
    with egress.EgressProxy(["pypi.org"]) as proxy:
        reply = _connect(proxy, b"CONNECT pypi.org:443 HTTP/1.1\r\n" + b"X: y\r\n" * 2000)
    assert reply == b""


def test_a_sandboxed_command_reaches_the_package_index_and_nothing_else():
    script = (
        f'python3 -c "$1" {egress.SANDBOX_DIR}/{egress.SOCKET_NAME} /tmp/.ready &\n'
        "for i in $(seq 100); do [ -e /tmp/.ready ] && break; sleep 0.05; done\n"
        "python3 - <<'PY'\n"
        "import socket, urllib.request\n"
        "print('index', urllib.request.urlopen('https://pypi.org/simple/iniconfig/', timeout=30).status)\n"
        "for url in ('https://localhost/', 'https://127.0.0.1:5432/'):\n"
        "    try:\n"
        "        urllib.request.urlopen(url, timeout=10)\n"
        "        print('REACHED', url)\n"
        "    except OSError as exc:\n"
        "        print('refused', url)\n"
        "for port in (5432, 6379):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=3)\n"
        "        print('REACHED', port)\n"
        "    except OSError:\n"
        "        print('no route', port)\n"
        "PY\n"
    )
    with egress.EgressProxy(
        settings.MARLIN_EVIDENCE_SETUP_HOSTS + ["localhost"],
        networks=settings.MARLIN_EVIDENCE_SETUP_NETWORKS,
    ) as proxy:  # fmt: skip
        result = sandbox.run(
            ["sh", "-c", script, "sh", egress.FORWARDER], workdir=None,
            mounts=[sandbox.Mount(target=egress.SANDBOX_DIR, source=proxy.folder)],
            env=egress.environment(), timeout=90,
        )  # fmt: skip
    out = result.stdout.decode()
    assert "index 200" in out, result.stderr.decode()[-2000:]
    assert "REACHED" not in out
    assert out.count("refused") == 2 and out.count("no route") == 2
    assert proxy.refused == ["localhost:443", "127.0.0.1:5432"]
