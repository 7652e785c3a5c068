"""The deployment files: docker-compose.yml is valid and wires Loom to Postgres and Redis."""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.conftest import ROOT


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
        env={**os.environ, "LOOM_JWT_SECRET": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
