"""The public API against its OpenAPI document, through the gateway, with schemathesis: generated requests
(valid and invalid) may not produce a 5xx, an undocumented status, header or content type, or a body that
does not match the document; invalid ones must be refused."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml

from api.gateway.pages import OPENAPI
from tests.e2e.conftest import System

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "negative_data_rejection")
# Not checked: positive_data_acceptance (bread refuses some schema-valid requests by its business rules: an
# item not on MENU, a charge over PAY_LIMIT, a reused Idempotency-Key — each answered with its documented
# 4xx) and use_after_free (DELETE /orders/{id} cancels an order, which stays readable as Cancelled).
# The streams last as long as their caller: schemathesis would wait on each until its timeout.
STREAMS = ("streamMypages", "streamTickets")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def test_the_gateway_serves_the_api_docs(system: System):
    status, document, headers = await system.request("GET", f"{system.url('gateway')}/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.") and "/orders" in document["paths"]
    async with system.http.get(f"{system.url('gateway')}/docs") as response:
        page = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert "swagger-ui" in page and 'url: "openapi.json"' in page


async def test_schemathesis_finds_no_answer_outside_the_document(system: System, tmp_path: Path):
    schemathesis = Path(sys.executable).with_name("st")
    run = await asyncio.create_subprocess_exec(
        str(schemathesis), "run", f"{system.url('gateway')}/openapi.json", "--max-examples", "25", "--seed", "7",
        "--checks", ",".join(CHECKS), "--no-color",
        *(option for stream in STREAMS for option in ("--exclude-operation-id", stream)),
        "--generation-database", "none", "--request-timeout", "15",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(run.communicate(), timeout=300)
    report = output.decode(errors="replace")
    assert run.returncode == 0, report[-6000:]
    operations = sum(method in METHODS for path in yaml.safe_load(OPENAPI.read_text())["paths"].values()
                     for method in path)
    assert f"{operations - len(STREAMS)} selected / {operations} total" in report, report[-3000:]
