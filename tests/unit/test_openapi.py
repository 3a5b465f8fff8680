"""The OpenAPI document (api/openapi.yaml) and the handlers stay in step: every public route the code serves
is documented with its methods, and nothing is documented that no handler serves."""
import ast
from pathlib import Path

import yaml

from agents.settings import PROJECT_ROOT
from api.gateway.pages import OPENAPI
from api.routes import route_of

API = PROJECT_ROOT / "api"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def served_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every handler in api/: aiohttp's add_<method>, Faust's @app.page views (their
    get/post/... methods), serve_rows and serve_changes (GET)."""
    routes = set()
    for source in API.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                name = node.func.attr
                if name.startswith("add_") and name[4:] in HTTP_METHODS:
                    routes.add((name[4:].upper(), node.args[0].value))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("serve_rows", "serve_changes"):
                routes.add(("GET", node.args[2].value))
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", None) == "page":
                        methods = {f.name for f in node.body if isinstance(f, ast.AsyncFunctionDef)} & HTTP_METHODS
                        routes |= {(m.upper(), decorator.args[0].value) for m in methods}
    return routes


def documented_routes() -> set[tuple[str, str]]:
    document = yaml.safe_load(Path(OPENAPI).read_text())
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


def test_the_document_describes_exactly_the_public_routes():
    public = {(method, path) for method, path in served_routes() if route_of(path) is not None}
    assert ("POST", "/orders") in public and ("GET", "/mypages/{orderId}") in public  # the scan sees both kinds
    assert public - documented_routes() == set(), "served but not in api/openapi.yaml"
    assert documented_routes() - public == set(), "documented but served by no handler"


def test_the_document_is_sound_openapi_3():
    document = yaml.safe_load(Path(OPENAPI).read_text())
    assert document["openapi"].startswith("3.")
    text = Path(OPENAPI).read_text()
    for ref in {line.split("#/", 1)[1].split('"')[0] for line in text.splitlines() if "$ref" in line}:
        node = document
        for part in ref.split("/"):
            node = node[part]
        assert node, ref
