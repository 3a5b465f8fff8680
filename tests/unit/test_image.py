"""The container image: two stages, no build tools in the final one, non-root, entrypoint `bread`."""
import json
import re
import tomllib

from agents.settings import PROJECT_ROOT
from ops.cli import SERVICES

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()


def stages() -> dict[str, str]:
    parts = re.split(r"^FROM\s+", DOCKERFILE, flags=re.M)[1:]
    return {part.split()[2]: part for part in parts}  # "<image> AS <name> ..."


def test_the_image_runs_slim_apart_from_its_build_stage():
    found = stages()
    assert list(found) == ["build", "runtime"]
    assert all(body.startswith("python:3.11-slim") for body in found.values())
    runtime = found["runtime"]
    assert "pip install" not in runtime and "apt-get" not in runtime and "gcc" not in runtime
    assert "COPY --from=build /opt/bread /opt/bread" in runtime


def test_the_runtime_runs_as_a_non_root_user():
    user = re.findall(r"^USER\s+(\S+)", stages()["runtime"], flags=re.M)
    assert user and user[-1] not in ("root", "0")


def test_the_entrypoint_is_the_bread_command_of_the_package():
    entrypoint = re.search(r'^ENTRYPOINT\s+\["([^"]+)"\]', DOCKERFILE, flags=re.M).group(1)
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == "bread" and scripts["bread"] == "ops.cli:main"
    command = json.loads(re.search(r"^CMD\s+(\[.*\])", DOCKERFILE, flags=re.M).group(1))
    assert command[0] == "run" and command[1] in SERVICES


def test_the_image_reads_topics_yaml_from_where_it_copies_it():
    assert "COPY topics.yaml /etc/bread/topics.yaml" in DOCKERFILE
    assert "BREAD_TOPICS_FILE=/etc/bread/topics.yaml" in DOCKERFILE
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "kafka/target" in ignored and "topics.yaml" not in ignored


def test_the_api_document_the_gateway_serves_is_in_the_package():
    from api.gateway.pages import OPENAPI

    package_data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert OPENAPI.parent.name == "api" and OPENAPI.name in package_data["api"]


def test_the_image_copies_every_package_the_project_installs():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = package.rstrip("*")
        assert f"COPY {package} ./{package}" in DOCKERFILE
