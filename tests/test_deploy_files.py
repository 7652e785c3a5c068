"""The deployment files: docker-compose.yml is valid and wires Loom to Postgres and Redis;
the image and the compose file start Loom in production mode with JWT auth."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from pydantic import ValidationError

from loom.settings import load_settings
from tests.conftest import ROOT

SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes


def test_compose_file_is_the_scaled_form() -> None:
    """Postgres with pgvector, Redis, two API services without workers, two workers, and a
    proxy in front of the APIs, every Loom service wired to the same Postgres and Redis."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "api-1", "api-2", "worker", "nginx"}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    for name in ("api-1", "api-2"):
        assert services[name]["command"] == ["loom", "serve", "--no-worker"]
    assert services["worker"]["command"] == ["loom", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("api-1", "api-2", "worker"):
        loom = services[name]
        assert loom["build"] == "."
        env = loom["environment"]
        assert env["LOOM_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["LOOM_DATABASE_URL"]
        assert env["LOOM_REDIS_URL"].startswith("redis://redis:6379")
        assert env["LOOM_ENV"] == "production"
        assert env["LOOM_AUTH"] in ("jwt", "oidc")  # production refuses cookie auth
        assert loom["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert loom["depends_on"]["redis"]["condition"] == "service_healthy"
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server api-1:8100;" in conf and "server api-2:8100;" in conf
    assert "proxy_buffering off;" in conf  # SSE goes through as it is written
    assert (ROOT / "Dockerfile").is_file()


def test_docker_compose_config_accepts_the_file() -> None:
    """``docker compose config`` (or the standalone ``docker-compose``, which .ci/run installs)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose", "config", "-q"]
    else:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        assert probe.returncode == 0, "neither docker-compose nor docker compose is installed"
        command = ["docker", "compose", "config", "-q"]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "LOOM_JWT_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _dockerfile_env() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's last stage (the image Loom runs in)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    last_stage = text.rsplit("\nFROM ", 1)[-1]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", last_stage, flags=re.MULTILINE):
        for pair in shlex.split(line):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def _only(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The process environment holds exactly these LOOM_ variables."""
    for name in list(os.environ):
        if name.startswith("LOOM_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_the_image_defaults_to_production_with_jwt(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _dockerfile_env()
    assert env["LOOM_ENV"] == "production"
    assert env["LOOM_AUTH"] == "jwt"
    # As the image starts: refused until a secret is given, with a message naming it.
    _only(monkeypatch, env)
    with pytest.raises(ValidationError, match="LOOM_JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("LOOM_JWT_SECRET", "too-short")
    with pytest.raises(ValidationError, match="LOOM_JWT_SECRET must be at least 32 bytes"):
        load_settings()
    monkeypatch.setenv("LOOM_JWT_SECRET", SECRET)
    settings = load_settings()
    assert (settings.env, settings.auth, settings.host) == ("production", "jwt", "0.0.0.0")


def test_compose_services_start_in_production_with_jwt(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("api-1", "api-2", "worker"):
        env = compose["services"][name]["environment"]
        # No default secret: compose refuses to start without one.
        assert env["LOOM_JWT_SECRET"] == "${LOOM_JWT_SECRET:?set LOOM_JWT_SECRET}"
        given = {
            k: SECRET if k == "LOOM_JWT_SECRET" else str(v)
            for k, v in env.items()
            if k.startswith("LOOM_")
        }
        _only(monkeypatch, given)
        settings = load_settings()
        assert (settings.env, settings.auth) == ("production", "jwt")
        assert settings.forwarded_allow_ips == "*"  # nginx, the only client, is believed
