"""schemathesis against the service's own OpenAPI document, on a real `ai-computer serve`:
whatever the generated request, no 500, no hang, and nothing left behind afterwards.

Cases that name a sandbox get a real one (a random id would only ever meet the 404). Left out:
``/packages`` (it would send random names to the package index) and deleting that sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from service_process import ServiceProcess, start_service

from ai_computer.backends.labels import OWNER_PID_LABEL, SANDBOX_LABEL
from ai_computer.service.app import ServiceSettings, create_app
from ai_computer.service.sandboxes import Sandboxes

# The document is the app's own, built without starting anything.
_DOCUMENT = create_app(
    ServiceSettings(tokens=["x" * 16]),
    Sandboxes({}, max_sandboxes=1, per_token=1, idle_timeout=None),
).openapi()
schema = schemathesis.openapi.from_dict(_DOCUMENT)


@pytest.fixture(scope="module")
def fuzzed_service(
    docker_engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, str]]:
    process = start_service(
        tmp_path_factory.mktemp("fuzzed"), "--per-token", "3", "--max-sandboxes", "10",
        "--timeout", "5", "--memory-limit", "256M",
    )  # fmt: skip
    with httpx.Client(base_url=process.url, headers=process.headers(), timeout=60) as http:
        sandbox = http.post("/api/v1/sandbox/create").json()["sandbox_id"]
    yield process, sandbox
    assert process.stop() == 0, "".join(process.log)
    labels = [SANDBOX_LABEL, f"{OWNER_PID_LABEL}={process.pid}"]
    assert docker_engine.api.containers(all=True, filters={"label": labels}) == []


@schema.exclude(path_regex="/packages$").parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_makes_the_service_fail(
    case: schemathesis.Case, fuzzed_service: tuple[ServiceProcess, str]
) -> None:
    process, sandbox = fuzzed_service
    parameters = case.path_parameters or {}
    if "sandbox_id" in parameters and not (case.method == "DELETE" and case.path.endswith("}")):
        parameters["sandbox_id"] = sandbox
    response = case.call(base_url=process.url, headers=process.headers(), timeout=30)
    # 429 for the token's quota; a 5xx would be the service failing.
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    content_type = str(response.headers.get("content-type", ""))
    if response.status_code >= 400 and "application/json" in content_type:
        assert isinstance(response.json().get("error"), str)  # every error says what was wrong
