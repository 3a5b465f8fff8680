"""The order the tests run in: the end-to-end modules shuffled every run, so none comes to depend on another."""
from __future__ import annotations

import os
import random

import pytest

ORDER_SEED_VARIABLE = "BREAD_E2E_ORDER_SEED"


def _order_seed(config) -> int:
    if not hasattr(config, "_bread_e2e_seed"):
        given = os.environ.get(ORDER_SEED_VARIABLE)
        config._bread_e2e_seed = int(given) if given else random.SystemRandom().randrange(10_000)
    return config._bread_e2e_seed


def _order_line(config) -> str:
    return (f"end-to-end modules in a shuffled order: {ORDER_SEED_VARIABLE}={_order_seed(config)} "
            "runs them in this order again")


def pytest_report_header(config) -> str:
    return _order_line(config)


def pytest_terminal_summary(terminalreporter, config) -> None:
    terminalreporter.write_line(_order_line(config))


def pytest_collection_modifyitems(session, config, items) -> None:
    """Run the end-to-end modules in a different order every run (each module's tests in their own order), so
    a module that depends on another having run first shows up; the seed in the header repeats an order."""
    modules: dict[str, list] = {}
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)  # `pytest -m "not e2e"` (make test-fast) leaves them out
            modules.setdefault(str(item.path), []).append(item)
    if not modules:
        return
    names = sorted(modules)
    random.Random(_order_seed(config)).shuffle(names)
    first = next(i for i, item in enumerate(items) if "/e2e/" in str(item.path))
    others = [item for item in items if "/e2e/" not in str(item.path)]
    items[:] = others[:first] + [item for name in names for item in modules[name]] + others[first:]
