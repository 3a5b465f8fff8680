"""Settings: read once from the environment, every bad value refused by name before anything starts, the
defaults defined once — and the README's table and the ConfigMap generated from them."""
import ast
from dataclasses import fields

import pytest

from agents.settings import PROJECT_ROOT, Settings, SettingsRefused, delay_range, described, priced_items


def test_without_any_variable_every_default_runs_locally():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092" and settings.kafka_is_local
    assert settings.service_url("order-worker") == "http://127.0.0.1:6081"
    assert settings.pay_ledger_path == PROJECT_ROOT / "var" / "pay" / "ledger.sqlite3"
    assert settings.menu["cake"] == 25000 and settings.pay_delay_ms == (0.0, 0.0)
    assert settings.rate_limit_burst == 200 and not settings.gateway_auth


def test_what_follows_from_other_settings_follows_them():
    settings = Settings.from_env({"KAFKA_PORT": "19092", "BREAD_DATA_DIR": "/d", "ORDER_PORT": "18081",
                                  "GATEWAY_RATE_LIMIT_RPS": "5", "PAY_URL": "http://pay:8083/,http://pay2:8083"})
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert str(settings.pay_ledger_path) == "/d/pay/ledger.sqlite3" and str(settings.tokens_path) == "/d/gateway/tokens"
    assert settings.service_url("order") == "http://127.0.0.1:18081"
    assert settings.service_urls("pay") == ("http://pay:8083", "http://pay2:8083")
    assert settings.rate_limit_burst == 10


def test_each_route_keeps_its_own_gateway_timeout_unless_one_is_set_for_all():
    # The bug this fixed: a ConfigMap that set GATEWAY_TIMEOUT_S to its documented default gave every route 10 s.
    settings = Settings.from_env({"GATEWAY_TIMEOUT_ORDERS_S": "12.5"})
    assert [settings.gateway_timeout(r) for r in ("/orders", "/payments", "/bakeries", "/mypages",
                                                  "/order-requests")] == [12.5, 5, 5, 10, 5]
    assert Settings.from_env({"GATEWAY_TIMEOUT_S": "3"}).gateway_timeout("/orders") == 3


def test_every_bad_value_is_named_at_once_with_what_it_takes():
    with pytest.raises(SettingsRefused) as refused:
        Settings.from_env({"ORDER_PORT": "eighty", "PAY_FALLBACK": "retry", "GATEWAY_AUTH": "maybe",
                           "PAY_BREAKER_FAILURE_RATE": "2", "MENU": "cake", "PAY_DELAY_MS": "slow",
                           "GATEWAY_TRUSTED_PROXIES": "the-ingress", "PAY_URL": "pay:8083", "SAGA_DEADLINE_S": "-1"})
    problems = "\n".join(refused.value.problems)
    for expected in ("ORDER_PORT='eighty': must be a whole number from 1",
                     "PAY_FALLBACK='retry': must be one of reject, defer",
                     "GATEWAY_AUTH='maybe': must be on or off", "PAY_BREAKER_FAILURE_RATE='2': must be a share",
                     "MENU='cake'", "PAY_DELAY_MS='slow': must be milliseconds",
                     "GATEWAY_TRUSTED_PROXIES='the-ingress'", "PAY_URL='pay:8083': must be an http",
                     "SAGA_DEADLINE_S='-1': must be a number above 0"):
        assert expected in problems
    assert len(refused.value.problems) == 9
    assert "bread cannot start" in str(refused.value.code)


@pytest.mark.parametrize("raw, expected", [("", (0.0, 0.0)), ("500", (0.5, 0.5)), ("400-620", (0.4, 0.62)),
                                           (" 0-10 ", (0.0, 0.01))])
def test_pay_delay_is_a_fixed_time_or_a_range(raw, expected):
    assert delay_range(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["slow", "620-400", "-5", "1-2-3"])
def test_a_pay_delay_that_makes_no_sense_is_refused(raw):
    with pytest.raises(ValueError, match="milliseconds"):
        delay_range(raw)


def test_each_setting_is_one_variable_with_its_meaning():
    names = [d["env"] for d in described()]
    assert len(names) == len(set(names)) == len(fields(Settings))
    assert all(d["meaning"] for d in described())


def test_the_code_reads_the_environment_only_through_the_settings():
    """Defaults defined once: no module but agents/settings.py looks at the environment."""
    readers = []
    for source in [*(PROJECT_ROOT / "agents").rglob("*.py"), *(PROJECT_ROOT / "api").rglob("*.py")]:
        if source.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
                readers.append(f"{source.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert readers == []


def test_the_menu_is_items_with_whole_prices():
    assert priced_items("cake=25000, bread=3000") == {"cake": 25000, "bread": 3000}
    for bad in ("", "cake", "cake=abc", "=5"):
        with pytest.raises(ValueError):
            priced_items(bad)


def test_exactly_once_is_refused_with_what_bread_gives_instead():
    assert Settings.from_env({"PROCESSING_GUARANTEE": "at_least_once"}).processing_guarantee == "at_least_once"
    with pytest.raises(SettingsRefused) as refused:
        Settings.from_env({"PROCESSING_GUARANTEE": "exactly_once"})
    assert "no longer offered" in str(refused.value) and "idempotent" in str(refused.value)
