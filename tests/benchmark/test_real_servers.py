"""The TGI and OpenAI clients (benchmark/wire) against real third-party servers, proxies and a local CA.

Each server runs in its own process, on a loopback socket bound here (port 0) and inherited: uvicorn with
h11 and with httptools, hypercorn, gunicorn (uvicorn workers, ``--max-requests``), aiohttp, Python's
``http.server``, uvicorn with TLS from a local CA (trustme), and proxy.py as the forward proxy. The apps
(tests/benchmark/real_server_apps.py) log what each request looked like *when the server got it*; what
the server saw, the proxy's access log and boto3's own connections are the oracles here, never the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme

from benchmark.cli import main
from benchmark.clients.base import Client
from benchmark.clients.openai_chat import OpenAIChatClient
from benchmark.clients.sagemaker import SageMakerClient
from benchmark.clients.tgi_http import TgiHttpClient
from benchmark.measure.loadgen import LevelRun, LoadSpec, run_level
from benchmark.measure.metrics import compute_metrics
from benchmark.measure.prompts import GenerationParams, Prompt
from benchmark.measure.records import ErrorKind, RequestRecord

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APPS = "tests.benchmark.real_server_apps"
PARAMS = GenerationParams(max_new_tokens=5)
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "CURL_CA_BUNDLE")
QUERY = "api-version=2024-06-01&deployment=llama"


# --- servers -------------------------------------------------------------------------------------------------


class Server:
    """One server process on a listening socket made here and inherited (fd), so it has its port at once."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], log: Path, tls: ssl.SSLContext | None = None):
        self.name, self.log, self.tls = name, log, tls
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        env = {**os.environ, "REAL_SERVER_LOG": str(log), "REAL_SERVER_NAME": name, "PYTHONWARNINGS": "ignore"}
        self._stderr = log.with_name(f"{name}.stderr").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, *argv(listener.fileno())],
            cwd=ROOT,
            env=env,
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )
        listener.close()  # the server holds its own copy
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def base_url(self) -> str:
        return f"{'https://localhost' if self.tls else 'http://127.0.0.1'}:{self.port}"

    def _wait_ready(self) -> None:
        """The socket listens already; one request waits in its backlog until the server answers it."""
        deadline = time.monotonic() + 60
        while True:
            host = "localhost" if self.tls else "127.0.0.1"
            conn: http.client.HTTPConnection = (
                http.client.HTTPSConnection(host, self.port, timeout=30, context=self.tls)
                if self.tls
                else http.client.HTTPConnection(host, self.port, timeout=30)
            )
            try:
                conn.request("POST", "/ready", body=b"{}")
                conn.getresponse().read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not start: {self.stderr()}") from None
                time.sleep(0.2)
            finally:
                conn.close()

    def seen(self, prefix: str) -> list[dict[str, Any]]:
        """What this server logged for the requests whose prompt starts with ``prefix``."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []
        return [s for s in lines if s["server"] == self.name and str(s.get("prompt") or "").startswith(prefix)]

    def stderr(self) -> str:
        self._stderr.flush()
        return self.log.with_name(f"{self.name}.stderr").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        stop(self.process)
        self._stderr.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process this module started (by its handle), killing it after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uvicorn(http: str, *extra: str) -> Callable[[int], list[str]]:
    common = ["--no-access-log", "--log-level", "warning", *extra, f"{APPS}:asgi_app"]
    return lambda fd: ["-m", "uvicorn", "--fd", str(fd), "--http", http, *common]


SERVERS: dict[str, Callable[[int], list[str]]] = {
    "uvicorn-h11": uvicorn("h11"),
    "uvicorn-httptools": uvicorn("httptools"),
    "hypercorn": lambda fd: ["-m", "hypercorn", "--bind", f"fd://{fd}", f"{APPS}:asgi_app"],
    "aiohttp": lambda fd: ["-m", APPS, "aiohttp", str(fd)],
    "http.server": lambda fd: ["-m", APPS, "http.server", str(fd)],
    # Two workers that restart after 10 requests each, closing their kept-alive connections as they go.
    "gunicorn": lambda fd: [
        *("-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "2", "--max-requests", "10"),
        *("--worker-class", "uvicorn.workers.UvicornWorker", "--log-level", "warning", f"{APPS}:asgi_app"),
    ],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-servers")


@pytest.fixture(scope="module")
def servers(workdir: Path) -> Iterator[Callable[[str], Server]]:
    """Each server started on first use and kept for the module."""
    started: dict[str, Server] = {}

    def get(name: str) -> Server:
        if name not in started:
            started[name] = Server(name, SERVERS[name], workdir / "requests.jsonl")
        return started[name]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def ca(workdir: Path) -> trustme.CA:
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(workdir / "ca.pem"))
    return authority


@pytest.fixture(scope="module")
def tls_server(workdir: Path, ca: trustme.CA) -> Iterator[Server]:
    """uvicorn (h11) with a certificate for ``localhost`` only, issued by the local CA."""
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(workdir / "server.pem"))
    client_side = ssl.create_default_context(cafile=str(workdir / "ca.pem"))
    tls = ("--ssl-certfile", str(workdir / "server.pem"), "--ssl-keyfile", str(workdir / "server.pem"))
    server = Server("uvicorn-tls", uvicorn("h11", *tls), workdir / "requests.jsonl", tls=client_side)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no extra trust unless a test sets them (the machine's own settings would change answers)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in TRUST_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def send_all(client: Client, prompts: Sequence[str], *, users: int = 1) -> list[RequestRecord]:
    """Each user sends its share of ``prompts`` one after the other (keep-alive), then the client is closed."""

    async def go() -> list[RequestRecord]:
        async def user(index: int) -> list[RequestRecord]:
            mine = prompts[index::users]
            return [await client.send(Prompt(text=text), PARAMS, user=index) for text in mine]

        try:
            shares = await asyncio.gather(*(user(index) for index in range(users)))
        finally:
            await client.aclose()
        return [record for share in shares for record in share]

    return asyncio.run(go())


def clients(base_url: str, **options: Any) -> dict[str, Client]:
    return {
        "tgi-stream": TgiHttpClient(base_url, streaming=True, timeout_s=20, **options),
        "tgi-whole": TgiHttpClient(base_url, streaming=False, timeout_s=20, **options),
        "openai-stream": OpenAIChatClient(base_url, streaming=True, timeout_s=20, **options),
        "openai-whole": OpenAIChatClient(base_url, streaming=False, timeout_s=20, **options),
    }


ROUTES = {
    "tgi-stream": "/generate_stream",
    "tgi-whole": "/generate",
    "openai-stream": "/v1/chat/completions",
    "openai-whole": "/v1/chat/completions",
}


# --- framing, Accept-Encoding and the query string, server by server -------------------------------------------


@pytest.mark.parametrize("name", ["uvicorn-h11", "uvicorn-httptools", "hypercorn", "aiohttp", "http.server"])
def test_every_client_reads_each_server_and_the_server_sees_identity_and_the_query(
    servers: Callable[[str], Server], name: str
) -> None:
    server = servers(name)
    for kind, client in clients(f"{server.base_url}/?{QUERY}").items():
        prefix = f"basic-{name}-{kind}-"
        records = send_all(client, [f"{prefix}{index}" for index in range(2)])  # the second on the kept connection
        assert [r.error_detail for r in records] == ["", ""], kind
        assert [r.generated_tokens for r in records] == [5, 5], kind
        if kind.endswith("stream"):
            assert [len(r.token_times) for r in records] == [5, 5], kind
        seen = server.seen(prefix)
        assert [(s["path"], s["query"]) for s in seen] == [(ROUTES[kind], QUERY)] * 2, kind
        assert [s["accept_encoding"] for s in seen] == ["identity"] * 2, kind


def test_a_compressed_body_is_an_error_that_names_its_encoding(servers: Callable[[str], Server]) -> None:
    """aiohttp compresses with its own gzip whatever the request accepts: the error says so."""
    server = servers("aiohttp")
    for kind, client in clients(f"{server.base_url}/gzip").items():
        (record,) = send_all(client, [f"gzip-{kind}"])
        assert record.error is ErrorKind.MALFORMED_FRAME, kind
        assert "Content-Encoding: gzip" in record.error_detail, kind
        assert [s["accept_encoding"] for s in server.seen(f"gzip-{kind}")] == ["identity"], kind


# --- a server that closes kept-alive connections ---------------------------------------------------------------


async def closed_loop(client: Client, prompts: list[Prompt]) -> LevelRun:
    """One closed-loop level through the load generator: 4 users, one request per prompt."""
    spec = LoadSpec(concurrency=4, duration_s=None, max_requests=len(prompts), timeout_s=20, fail_fast_requests=0)
    try:
        return await run_level(client, prompts, PARAMS, spec)
    finally:
        await client.aclose()


def test_connections_closed_by_a_restarting_worker_lose_no_request(servers: Callable[[str], Server]) -> None:
    """gunicorn's workers restart every 10 requests and close their idle kept-alive connections unannounced.

    A request that went out on such a connection got no byte back: it is sent again on a new connection and
    counted. The server's log shows that each request was processed exactly once (a resend is not a duplicate).
    Batches of 40 requests (4 users) until one saw a resend: the race with the close is the server's (a client
    that noticed the close before reusing the connection needs no resend; about half the batches see none, so
    up to 10 batches make a run without any resend a one-in-a-few-hundred event rather than one in ten).
    """
    server = servers("gunicorn")
    resent = 0
    for batch in range(10):
        prompts = [Prompt(text=f"gunicorn-{batch}-{index}") for index in range(40)]
        run = asyncio.run(closed_loop(TgiHttpClient(server.base_url, streaming=True, concurrency=4), prompts))
        metrics = compute_metrics(run)
        assert metrics.requests_resent == sum(r.resent for r in run.records)
        processed = sorted(s["prompt"] for s in server.seen(f"gunicorn-{batch}-"))
        assert len(processed) == len(set(processed))  # none twice: a resend is never a duplicate
        # None lost silently. A worker that exits resets or closes a connection it accepted but never read (seen
        # about once in 400 requests on a loaded machine, twice in one batch once); when that connection was new,
        # or it was the resend's, the rule sends nothing again, so the request is counted as an error: the
        # server's log must show it never ran (the counts below: every other request ran exactly once).
        failed = [r for r in run.records if not r.ok]
        unread = ("ConnectionResetError", "connection closed before a response")
        assert all(any(u in r.error_detail for u in unread) for r in failed), [r.error_detail for r in failed]
        assert len(failed) <= 2, [r.error_detail for r in failed]
        assert metrics.requests_ok == 40 - len(failed)
        assert set(processed) <= {p.text for p in prompts} and len(processed) == 40 - len(failed)
        resent += metrics.requests_resent
        if resent:
            break
    assert resent > 0


# --- redirects ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["uvicorn-h11", "aiohttp"])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_recorded_with_its_status_and_location_and_not_followed(
    servers: Callable[[str], Server], name: str, status: int
) -> None:
    server = servers(name)
    for kind in ("tgi-stream", "openai-stream"):
        client = clients(f"{server.base_url}/r{status}")[kind]
        prefix = f"redirect-{name}-{status}-{kind}"
        (record,) = send_all(client, [prefix])
        location = f"/moved{ROUTES[kind]}" if status != 301 else f"http://127.0.0.1:{server.port}/moved{ROUTES[kind]}"
        assert record.error is ErrorKind.REDIRECT, (kind, record.error_detail)
        assert f"HTTP {status}" in record.error_detail
        assert f"Location: {location};" in record.error_detail
        assert f"not followed: point --url at {server.base_url}/moved" in record.error_detail
        assert [s["path"] for s in server.seen(prefix)] == [f"/r{status}{ROUTES[kind]}"]  # and no /moved request


def test_the_cli_names_the_redirect_when_it_aborts(
    servers: Callable[[str], Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = servers("uvicorn-h11")
    argv = ["run", "--target", "tgi", "--url", f"{server.base_url}/r308", "--instance", "ml.g5.12xlarge"]
    argv += ["--model", "7b", "--concurrency", "1", "--max-requests", "12", "--duration", "30"]
    code = main([*argv, "--max-new-tokens", "5", "--results", str(tmp_path / "results.jsonl")])
    error = capsys.readouterr().err
    assert code == 3, error
    assert "last error: redirect: HTTP 308 redirect, Location: /moved/generate_stream;" in error
    assert f"not followed: point --url at {server.base_url}/moved" in error


# --- the next address ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def unresponsive_address() -> Iterator[int]:
    """A loopback port whose listen queue is full: a connect to it gets no answer (the SYN is dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        while True:  # fill the queue until a connect stays pending
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
            time.sleep(0.02)
            try:
                filler.getpeername()
            except OSError:
                break
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_the_next_address_is_tried_when_the_first_does_not_answer(
    servers: Callable[[str], Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers("uvicorn-h11")
    resolve = socket.getaddrinfo
    addresses: dict[str, list[int]] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in addresses:  # the test's own names: each address a loopback port, in this order
            stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
            return [(*stream, ("127.0.0.1", p)) for p in addresses[host]]
        return resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with unresponsive_address() as dead, socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: refuses
        refused = closed.getsockname()[1]
        addresses["two.test"] = [dead, server.port]
        addresses["none.test"] = [dead, refused]
        started = time.monotonic()
        for kind, client in clients(f"http://two.test:{server.port}", connect_timeout_s=0.5).items():
            (record,) = send_all(client, [f"next-{kind}"])
            assert record.ok, (kind, record.error_detail)
            assert len(server.seen(f"next-{kind}")) == 1
        assert time.monotonic() - started < 10
        (failed,) = send_all(TgiHttpClient("http://none.test:80", timeout_s=5, connect_timeout_s=0.5), ["next-none"])
    assert failed.error is ErrorKind.CONNECTION
    assert "none.test: 2 addresses tried: " in failed.error_detail
    assert f"TimeoutError: no answer from 127.0.0.1:{dead} within 0.5 s; " in failed.error_detail
    assert "ConnectionRefusedError" in failed.error_detail and f"{refused})" in failed.error_detail


# --- proxies -------------------------------------------------------------------------------------------------------


class ForwardProxy:
    """proxy.py in its own process; its access log names each tunnel (CONNECT) and each forwarded request."""

    def __init__(self, workdir: Path, name: str, *options: str) -> None:
        self.port_file, self.log = workdir / f"{name}.port", workdir / f"{name}.log"
        argv = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"]
        argv += ["--port-file", str(self.port_file), "--log-file", str(self.log), "--log-level", "INFO"]
        argv += ["--num-workers", "1", "--num-acceptors", "1", *options]
        self.process = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"proxy.py did not start: {self.lines()}")
            time.sleep(0.1)
        self.port = int(self.port_file.read_text())

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def wait_for(self, text: str, timeout_s: float = 10.0) -> list[str]:
        """The access-log lines holding ``text`` (proxy.py writes one when a client connection closes)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [line for line in self.lines() if text in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="module")
def proxy(workdir: Path) -> Iterator[ForwardProxy]:
    forward = ForwardProxy(workdir, "proxy")
    yield forward
    forward.stop()


@pytest.fixture(scope="module")
def auth_proxy(workdir: Path) -> Iterator[ForwardProxy]:
    forward = ForwardProxy(workdir, "auth-proxy", "--basic-auth", "bench:pa ss")
    yield forward
    forward.stop()


def test_http_through_the_proxy_is_sent_in_absolute_form(
    servers: Callable[[str], Server], proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers("uvicorn-h11")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    for kind, client in clients(f"{server.base_url}?{QUERY}").items():
        (record,) = send_all(client, [f"proxied-{kind}"])
        assert record.ok, (kind, record.error_detail)
        assert [(s["path"], s["query"]) for s in server.seen(f"proxied-{kind}")] == [(ROUTES[kind], QUERY)]
    # proxy.py forwards only requests whose target names the origin (absolute form) and logs that target.
    assert proxy.wait_for(f"POST 127.0.0.1:{server.port}/generate_stream?{QUERY}")
    assert proxy.wait_for(f"POST 127.0.0.1:{server.port}/v1/chat/completions?{QUERY}")


def test_https_through_the_proxy_is_a_tunnel_with_tls_to_the_origin(
    tls_server: Server, proxy: ForwardProxy, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The origin's certificate names ``localhost`` only and the proxy is 127.0.0.1: it is checked for the origin."""
    monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")  # without a scheme, as curl reads it
    monkeypatch.setenv("SSL_CERT_FILE", str(workdir / "ca.pem"))
    for kind, client in clients(tls_server.base_url).items():
        (record,) = send_all(client, [f"tunnel-{kind}"])
        assert record.ok, (kind, record.error_detail)
        assert [s["accept_encoding"] for s in tls_server.seen(f"tunnel-{kind}")] == ["identity"]
    assert proxy.wait_for(f"CONNECT localhost:{tls_server.port}")
    monkeypatch.delenv("SSL_CERT_FILE")  # the origin's CA untrusted: the tunnel opens, the handshake fails
    (refused,) = send_all(TgiHttpClient(tls_server.base_url, timeout_s=20), ["tunnel-untrusted"])
    assert refused.error is ErrorKind.CONNECTION
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error_detail
    assert tls_server.seen("tunnel-untrusted") == []


def test_no_proxy_bypasses_the_proxy(
    servers: Callable[[str], Server], proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers("uvicorn-h11")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    (record,) = send_all(TgiHttpClient(server.base_url, streaming=True, timeout_s=20), ["bypass-0"])
    assert record.ok, record.error_detail
    assert len(server.seen("bypass-0")) == 1
    monkeypatch.setenv("NO_PROXY", "example.com")  # the same request, now through the proxy
    (record,) = send_all(TgiHttpClient(f"{server.base_url}/?bypass=no", streaming=True, timeout_s=20), ["bypass-1"])
    assert record.ok, record.error_detail
    assert proxy.wait_for("/generate_stream?bypass=no")
    assert not any(f"127.0.0.1:{server.port}/generate_stream " in line for line in proxy.lines())  # bypass-0


def test_proxy_credentials_are_sent_as_proxy_authorization(
    servers: Callable[[str], Server], tls_server: Server, auth_proxy: ForwardProxy, workdir: Path, monkeypatch: Any
) -> None:
    server = servers("uvicorn-h11")
    monkeypatch.setenv("SSL_CERT_FILE", str(workdir / "ca.pem"))
    monkeypatch.setenv("HTTP_PROXY", f"http://bench:pa%20ss@127.0.0.1:{auth_proxy.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://bench:pa%20ss@127.0.0.1:{auth_proxy.port}")
    for base in (server.base_url, tls_server.base_url):
        (record,) = send_all(TgiHttpClient(base, streaming=True, timeout_s=20), [f"auth-{base}"])
        assert record.ok, (base, record.error_detail)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{auth_proxy.port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{auth_proxy.port}")
    (plain,) = send_all(TgiHttpClient(server.base_url, timeout_s=20), ["auth-missing-http"])
    (tunnel,) = send_all(TgiHttpClient(tls_server.base_url, timeout_s=20), ["auth-missing-https"])
    assert (plain.error, tunnel.error) == (ErrorKind.HTTP_4XX, ErrorKind.CONNECTION)
    assert plain.error_detail.startswith("HTTP 407")
    assert "refused CONNECT" in tunnel.error_detail and "407" in tunnel.error_detail
    assert server.seen("auth-missing") == [] and tls_server.seen("auth-missing") == []


# --- TLS: a large request through a small send buffer ---------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
def test_a_multi_megabyte_request_over_tls_through_a_tiny_send_buffer_arrives_whole(
    tls_server: Server, workdir: Path, monkeypatch: pytest.MonkeyPatch, streaming: bool
) -> None:
    """Every TLS write is short (4 KiB of send buffer against a 3 MB body): what uvicorn decoded is what was sent."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(workdir / "ca.pem"))
    prompt = f"tiny-sndbuf-{streaming}-" + "".join(chr(97 + i % 26) for i in range(3_000_000))
    client = TgiHttpClient(tls_server.base_url, streaming=streaming, timeout_s=30)

    async def go() -> RequestRecord:
        try:
            pool = client._http._get_pool()
            connection = await pool.acquire(10)
            connection._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            pool.release(connection)  # the next request goes out on this connection
            return await client.send(Prompt(text=prompt), PARAMS, user=0)
        finally:
            await client.aclose()

    record = asyncio.run(go())
    assert record.ok, record.error_detail
    assert record.generated_tokens == PARAMS.max_new_tokens
    (seen,) = tls_server.seen(f"tiny-sndbuf-{streaming}-")
    assert seen["prompt"] == prompt


# --- which certificates each target trusts --------------------------------------------------------------------------


# variable set to the local CA -> (the HTTP targets trust it, the SageMaker target trusts it): docs/benchmark.md's table
TRUST_TABLE = {
    None: (False, False),
    "SSL_CERT_FILE": (True, False),
    "REQUESTS_CA_BUNDLE": (True, True),
    "AWS_CA_BUNDLE": (True, True),
}


@pytest.mark.parametrize("variable", list(TRUST_TABLE))
def test_trust_variables_are_honoured_as_the_readme_table_says(
    tls_server: Server, workdir: Path, monkeypatch: pytest.MonkeyPatch, variable: str | None
) -> None:
    """HTTP targets: OpenSSL's defaults plus REQUESTS_CA_BUNDLE / AWS_CA_BUNDLE. SageMaker: what botocore trusts,
    asked of boto3 itself: its own request (``invoke``) and the one over benchmark/wire must agree."""
    http_trusts, sagemaker_trusts = TRUST_TABLE[variable]
    if variable is not None:
        monkeypatch.setenv(variable, str(workdir / "ca.pem"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(workdir / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(workdir / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    tag = f"trust-{variable}"
    for kind, client in clients(tls_server.base_url).items():
        (record,) = send_all(client, [f"{tag}-{kind}"])
        assert record.ok is http_trusts, (kind, record.error_detail)
        if not http_trusts:
            assert "CERTIFICATE_VERIFY_FAILED" in record.error_detail

    def sagemaker() -> SageMakerClient:
        return SageMakerClient("llama", timeout_s=20, region_name="us-east-1", endpoint_url=tls_server.base_url)

    boto3_client = sagemaker()
    boto3_record = boto3_client.invoke(Prompt(text=f"{tag}-boto3"), PARAMS)  # boto3's own connection: the oracle
    asyncio.run(boto3_client.aclose())
    (wire_record,) = send_all(sagemaker(), [f"{tag}-wire"])
    assert wire_record.ok is boto3_record.ok, (wire_record.error_detail, boto3_record.error_detail)
    assert boto3_record.ok is sagemaker_trusts, boto3_record.error_detail  # docs/benchmark.md's table on botocore
    assert len(tls_server.seen(f"{tag}-wire")) == int(wire_record.ok)
