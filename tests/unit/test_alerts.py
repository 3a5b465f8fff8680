"""bread's alert rules (k8s/overlays/prod/alerts.yaml) as Prometheus reads them: `promtool check rules` on the rules,
`promtool test rules` on synthetic series (tests/alerts/alerts-test.yaml), every alert shown firing and not firing,
and each saying why it exists and what to do."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agents.settings import PROJECT_ROOT

RULES = PROJECT_ROOT / "k8s" / "overlays" / "prod" / "alerts.yaml"
TESTS = PROJECT_ROOT / "tests" / "alerts" / "alerts-test.yaml"


def groups() -> dict:
    document = yaml.safe_load(RULES.read_text())
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return document["spec"]


def alerts() -> list[dict]:
    return [rule for group in groups()["groups"] for rule in group["rules"]]


def promtool(*args: str, cwd: Path) -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("the alert rules' tests need promtool: apt-get install prometheus (.ci/run installs it)")
    done = subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prometheus_takes_the_rules(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups()))
    assert f"SUCCESS: {len(alerts())} rules found" in promtool("check", "rules", "rules.yaml", cwd=tmp_path)


def test_every_alert_fires_when_it_should_and_not_otherwise(tmp_path):
    # Expected alerts are given by their labels; the annotations, prose, are left out of what the tests run on.
    bare = groups()
    for rule in (rule for group in bare["groups"] for rule in group["rules"]):
        rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    assert "SUCCESS" in promtool("test", "rules", TESTS.name, cwd=tmp_path)


def test_each_alert_is_tested_both_firing_and_not():
    checks = [check for case in yaml.safe_load(TESTS.read_text())["tests"] for check in case["alert_rule_test"]]
    for rule in alerts():
        mine = [check for check in checks if check["alertname"] == rule["alert"]]
        assert any(check["exp_alerts"] for check in mine), f"{rule['alert']} is never shown firing"
        assert any(not check["exp_alerts"] for check in mine), f"{rule['alert']} is never shown not firing"


def test_each_alert_says_why_it_exists_and_what_to_do():
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]
