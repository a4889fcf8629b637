"""Production settings as a deployment sees them: `check --deploy` is clean, and a real
gunicorn serves hashed, compressed static files, redirects plain HTTP to HTTPS unless
the proxy header says HTTPS, and still answers the container's health check.

Each test starts its own processes with the environment of a production container,
so nothing here depends on the settings the test run itself loaded."""

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = "agira.example.com"
# Variables of the developer's shell that would change what production means here.
_OWN = {
    "AGIRA_ENV",
    "AGIRA_PROXY_SSL_HEADER",
    "AGIRA_VAR_DIR",
    "ALLOWED_HOSTS",
    "CSRF_COOKIE_SECURE",
    "DATABASE_URL",
    "DEBUG",
    "DJANGO_SETTINGS_MODULE",
    "MEDIA_ROOT",
    "SECRET_KEY",
    "SESSION_COOKIE_SECURE",
    "STATIC_ROOT",
}


def _production_env(tmp: Path, **extra: str) -> dict[str, str]:
    # Nothing of the test process's own (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN and not k.startswith(("SECURE_", "DJANGO_ALLOW_"))
    }
    env.update(
        AGIRA_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=HOST,
        AGIRA_VAR_DIR=str(tmp / "var"),
        STATIC_ROOT=str(tmp / "static"),
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_reports_nothing_in_production(tmp_path):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


_PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in (
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE",
)} | {"staticfiles": s.STORAGES["staticfiles"]["BACKEND"]}))
"""


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        pytest.param(
            {},
            {
                "SECURE_SSL_REDIRECT": True,
                "SECURE_HSTS_SECONDS": 31_536_000,
                "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
                "SECURE_HSTS_PRELOAD": False,
                "SECURE_PROXY_SSL_HEADER": None,
                "SESSION_COOKIE_SECURE": True,
                "staticfiles": "whitenoise.storage.CompressedManifestStaticFilesStorage",
            },
            id="production-defaults",
        ),
        pytest.param(
            {
                "SECURE_SSL_REDIRECT": "false",
                "SECURE_HSTS_SECONDS": "3600",
                "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false",
                "SECURE_HSTS_PRELOAD": "true",
                "AGIRA_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            },
            {
                "SECURE_SSL_REDIRECT": False,
                "SECURE_HSTS_SECONDS": 3600,
                "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
                "SECURE_HSTS_PRELOAD": True,
                "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
            },
            id="production-overridden",
        ),
        pytest.param(
            {"AGIRA_ENV": "development"},
            {
                "SECURE_SSL_REDIRECT": False,
                "SECURE_HSTS_SECONDS": 0,
                "SECURE_PROXY_SSL_HEADER": None,
                "staticfiles": "django.contrib.staticfiles.storage.StaticFilesStorage",
            },
            id="development",
        ),
    ],
)
def test_https_settings_come_from_the_environment(tmp_path, environment, expected):
    env = _production_env(tmp_path, DJANGO_SETTINGS_MODULE="agira.settings", **environment)
    result = _run(["-c", _PRINT_SETTINGS], env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert {name: values[name] for name in expected} == expected


class _Gunicorn:
    """gunicorn agira.wsgi on 127.0.0.1 with one worker, as bench/bench_index.py starts it."""

    def __init__(self, env: dict[str, str], log: Path):
        with contextlib.closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "agira.wsgi:application"),
                *("--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--graceful-timeout", "5"),
                # gunicorn itself trusts X-Forwarded-Proto from 127.0.0.1; a proxy in another
                # container is not 127.0.0.1, and these tests are that proxy: trust nobody.
                *("--forwarded-allow-ips", ""),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=30, follow_redirects=False
        )

    def wait(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, Path(self.log.name).read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            assert time.monotonic() < deadline, "gunicorn did not listen within 30 s"
            time.sleep(0.1)

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """collectstatic into a temporary STATIC_ROOT, then two production servers: one told
    that its proxy sets X-Forwarded-Proto (`proxied`), one not (`direct`)."""
    tmp = tmp_path_factory.mktemp("production")
    env = _production_env(tmp)
    collected = _run(["manage.py", "collectstatic", "--noinput", "--verbosity", "0"], env)
    assert collected.returncode == 0, collected.stderr
    started = {
        "proxied": _Gunicorn(env | {"AGIRA_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO"}, tmp / "p"),
        "direct": _Gunicorn(env, tmp / "d"),
    }
    try:
        for server in started.values():
            server.wait()
        yield started | {"static_root": Path(env["STATIC_ROOT"])}
    finally:
        for server in started.values():
            server.stop()


HTTPS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def test_pages_link_static_files_with_hashed_names_served_compressed_and_cached(servers):
    client = servers["proxied"].client
    page = client.get("/accounts/login/", headers=HTTPS)
    assert page.status_code == 200
    css_url = re.search(r'href="(/static/css/agira\.[0-9a-f]{12}\.css)"', page.text).group(1)
    collected = (servers["static_root"] / css_url.removeprefix("/static/")).read_bytes()

    gzipped = client.get(css_url, headers=HTTPS | {"Accept-Encoding": "gzip"})
    assert gzipped.status_code == 200
    assert gzipped.headers["content-encoding"] == "gzip"
    assert int(gzipped.headers["content-length"]) < len(collected)
    assert gzipped.content == collected  # httpx decompressed it
    assert "accept-encoding" in gzipped.headers["vary"].lower()
    # The name changes with the content, so browsers may keep it for good.
    assert "max-age=315360000" in gzipped.headers["cache-control"]
    assert "immutable" in gzipped.headers["cache-control"]
    assert gzipped.headers["content-type"].startswith("text/css")

    plain = client.get(css_url, headers=HTTPS | {"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == collected


def test_plain_http_is_redirected_to_https_unless_the_proxy_says_https(servers):
    client = servers["proxied"].client
    for path in ("/accounts/login/", "/static/favicon.svg"):
        response = client.get(path, headers={"Host": HOST})
        assert response.status_code == 301, path
        assert response.headers["location"] == f"https://{HOST}{path}"
    # A client that reached the proxy over plain HTTP: the proxy says so.
    insecure = client.get("/accounts/login/", headers={"Host": HOST, "X-Forwarded-Proto": "http"})
    assert insecure.status_code == 301

    secure = client.get("/accounts/login/", headers=HTTPS)
    assert secure.status_code == 200
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "; secure" in secure.headers["set-cookie"].lower()  # the CSRF cookie


def test_without_agira_proxy_ssl_header_a_client_cannot_claim_https(servers):
    response = servers["direct"].client.get("/accounts/login/", headers=HTTPS)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{HOST}/accounts/login/"


@pytest.mark.parametrize("name", ["proxied", "direct"])
def test_the_compose_health_check_passes_over_plain_http_inside_the_container(servers, name):
    server = servers[name]
    # What the container asks: http://127.0.0.1:8000, not the public name, no proxy.
    for method in ("GET", "HEAD"):
        assert server.client.request(method, "/health/").status_code == 200, method
    assert server.client.get("/health/").text == "ok\n"
    # Any other path on that address is still refused: 127.0.0.1 is not an allowed host.
    assert server.client.get("/accounts/login/").status_code == 400

    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["app"]["healthcheck"]["test"]
    assert command[:2] == ["CMD", "python"]
    args = [arg.replace("127.0.0.1:8000/", f"127.0.0.1:{server.port}/") for arg in command[2:]]
    assert any(f"127.0.0.1:{server.port}/health/" in arg for arg in args), command
    result = _run(args, os.environ.copy())
    assert result.returncode == 0, result.stderr
