"""The deployment files: docker-compose.yml is valid and wires Loom to Postgres and Redis."""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.conftest import ROOT


def test_compose_file_wires_loom_to_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "loom"}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    loom = services["loom"]
    assert loom["build"] == "."
    env = loom["environment"]
    assert env["LOOM_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["LOOM_DATABASE_URL"]
    assert env["LOOM_REDIS_URL"].startswith("redis://redis:6379")
    assert env["LOOM_ENV"] == "production"
    assert env["LOOM_AUTH"] in ("jwt", "oidc")  # production refuses cookie auth
    assert loom["depends_on"]["postgres"]["condition"] == "service_healthy"
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
