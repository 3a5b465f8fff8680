"""The Kubernetes manifests: generated parts equal to what generates them, both overlays rendered with
kustomize and validated (kubernetes-validate --strict; Strimzi resources against Strimzi's CRD schemas),
and what the probes, rollouts and settings must say."""
from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agents.settings import PROJECT_ROOT, Settings, described
from api.admission import DOWNSTREAM
from api.http import STOP_GRACE_S
from api.routes import ROUTES
from ops.k8s import DRAIN_S, config_manifest, workloads_manifest
from ops.strimzi import topics_manifest

K8S = PROJECT_ROOT / "k8s"
STRIMZI_CRDS = Path(os.environ.get("STRIMZI_CRDS", PROJECT_ROOT.parent / "shared" / "strimzi-crds"))
OVERLAYS = ("dev", "prod")


def kustomize_command() -> list[str]:
    for candidate in (PROJECT_ROOT / ".tools" / "kustomize", shutil.which("kustomize")):
        if candidate and Path(candidate).exists():
            return [str(candidate), "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail("no kustomize: `make test` puts one in .tools/ (Makefile: .tools/.kustomize)")


@lru_cache(maxsize=None)
def rendered(overlay: str) -> tuple[dict, ...]:
    out = subprocess.run([*kustomize_command(), str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                         check=True).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def of_kind(overlay: str, *kinds: str) -> list[dict]:
    return [d for d in rendered(overlay) if d["kind"] in kinds]


def test_the_generated_manifests_are_what_their_generators_make():
    assert (K8S / "base" / "kafka" / "topics.yaml").read_text() == topics_manifest(), \
        "run `bread strimzi-topics > k8s/base/kafka/topics.yaml`"
    assert (K8S / "base" / "workloads.yaml").read_text() == workloads_manifest(), \
        "run `bread k8s-workloads > k8s/base/workloads.yaml`"
    assert (K8S / "base" / "configmap.yaml").read_text() == config_manifest(), \
        "run `bread k8s-config > k8s/base/configmap.yaml`"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kubernetes_resource_validates_strictly(overlay):
    for document in rendered(overlay):
        # Strimzi's resources are held to its CRDs below; the alert rules to Prometheus itself (test_alerts.py).
        if document["apiVersion"].startswith(("kafka.strimzi.io/", "monitoring.coreos.com/")):
            continue
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_strimzi_resources_match_strimzis_crds(overlay):
    if not STRIMZI_CRDS.is_dir():
        pytest.skip(f"Strimzi's CRD schemas are not at {STRIMZI_CRDS} (../shared/strimzi-crds)")
    schemas = {}
    for path in STRIMZI_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            schemas[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = \
                version["schema"]["openAPIV3Schema"]
    strimzi = [d for d in rendered(overlay) if d["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {d["kind"] for d in strimzi} == {"Kafka", "KafkaNodePool", "KafkaTopic"}
    for document in strimzi:
        jsonschema.validate(document, schemas[(document["apiVersion"], document["kind"])])
        assert document["metadata"].get("labels", {}).get("strimzi.io/cluster", "bread") == "bread"


def pods_of(workload: dict, autoscalers: list[dict]) -> int:
    """The fewest pods a workload runs: its HPA's minimum when one scales it, else its replicas."""
    name = workload["metadata"]["name"]
    scaled = [a["spec"]["minReplicas"] for a in autoscalers if a["spec"]["scaleTargetRef"]["name"] == name]
    return scaled[0] if scaled else workload["spec"].get("replicas", 1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_disruption_budget_forbids_every_eviction_so_a_node_can_be_drained(overlay):
    workloads = {w["metadata"]["name"]: w for w in of_kind(overlay, "Deployment", "StatefulSet")}
    autoscalers = of_kind(overlay, "HorizontalPodAutoscaler")
    for budget in of_kind(overlay, "PodDisruptionBudget"):
        spec = budget["spec"]
        (workload,) = [w for w in workloads.values()
                       if w["spec"]["selector"]["matchLabels"].items() >= spec["selector"]["matchLabels"].items()]
        pods = pods_of(workload, autoscalers)
        allowed = spec["maxUnavailable"] if "maxUnavailable" in spec else pods - spec["minAvailable"]
        assert allowed >= 1, f"{overlay}: {budget['metadata']['name']} lets none of its {pods} pods be evicted"
        assert allowed == 1, "one disruption at a time"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deployments_run_the_services_as_they_are_built_to_run(overlay):
    workloads = of_kind(overlay, "Deployment", "StatefulSet")
    assert {w["metadata"]["name"] for w in workloads} == {"gateway", "order", "bakery", "order-worker", "mypage", "pay",
                                                         "pay-ledger"}
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for b in of_kind(overlay, "PodDisruptionBudget")}
    for w in workloads:
        name, pod = w["metadata"]["name"], w["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["run", name.removesuffix("-ledger")]
        assert container["image"].startswith("ghcr.io/bread-project/bread:")
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert container["startupProbe"]["httpGet"]["path"] == "/health"
        assert container["livenessProbe"]["httpGet"]["path"] == "/live"
        assert pod["terminationGracePeriodSeconds"] > DRAIN_S + STOP_GRACE_S
        assert {"configMapRef": {"name": "bread-config"}} in container["envFrom"]
        assert name in budgets
        if w["kind"] == "Deployment":
            assert w["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pay = next(w for w in workloads if w["metadata"]["name"] == "pay")["spec"]["template"]["spec"]["containers"][0]
    assert (pay["resources"]["requests"]["cpu"], pay["resources"]["limits"]["cpu"]) == ("200m", "500m")
    stateful = {w["metadata"]["name"] for w in workloads if w["kind"] == "StatefulSet"}
    assert stateful == {"order-worker", "mypage", "pay-ledger"}
    for w in workloads:
        if w["kind"] == "StatefulSet":
            assert w["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_the_configmap_sets_only_known_settings_that_differ():
    known = {d["env"]: d for d in described()}
    for overlay in OVERLAYS:
        (configmap,) = [d for d in of_kind(overlay, "ConfigMap") if d["metadata"]["name"] == "bread-config"]
        assert set(configmap["data"]) <= set(known), "ConfigMap keys that are no setting"
        Settings.from_env(configmap["data"])  # every value one bread takes
    (base,) = [d for d in of_kind("dev", "ConfigMap") if d["metadata"]["name"] == "bread-config"]
    assert all(value != known[key]["default"] for key, value in base["data"].items()), "a default set again"
    assert "GATEWAY_TIMEOUT_S" not in base["data"], "each route keeps its own timeout"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_tells_prometheus_where_its_metrics_are(overlay):
    for w in of_kind(overlay, "Deployment", "StatefulSet"):
        template = w["spec"]["template"]
        (port,) = [p["containerPort"] for p in template["spec"]["containers"][0]["ports"] if p["name"] == "http"]
        assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true",
                                                       "prometheus.io/port": str(port),
                                                       "prometheus.io/path": "/metrics"}, w["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_brokers_export_their_metrics_where_prometheus_looks(overlay):
    (kafka,) = of_kind(overlay, "Kafka")
    assert kafka["spec"]["kafka"]["metricsConfig"]["type"] == "strimziMetricsReporter"
    for pool in of_kind(overlay, "KafkaNodePool"):
        assert pool["spec"]["template"]["pod"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_only_the_prod_overlay_carries_the_alert_rules():
    assert [d["metadata"]["name"] for d in of_kind("prod", "PrometheusRule")] == ["bread"]
    assert of_kind("dev", "PrometheusRule") == []


def test_only_the_prod_overlay_is_hardened():
    def settings(overlay):
        (configmap,) = [d for d in of_kind(overlay, "ConfigMap") if d["metadata"]["name"] == "bread-config"]
        return Settings.from_env(configmap["data"])
    assert (settings("dev").gateway_auth, settings("prod").gateway_auth) == (False, True)
    (pool,) = of_kind("prod", "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3
    assert {t["spec"]["replicas"] for t in of_kind("prod", "KafkaTopic")} == {3}
    assert settings("prod").kafka_replication_factor == 3 and settings("dev").bakery_auto_confirm
    gateway = next(d for d in rendered("prod") if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    mounts = gateway["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "tokens", "mountPath": "/etc/bread/tokens", "readOnly": True} in mounts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pay_scales_on_cpu_from_one_to_ten_fronts_over_one_ledger(overlay):
    (hpa,) = of_kind(overlay, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "pay"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}
    pay = next(d for d in of_kind(overlay, "Deployment") if d["metadata"]["name"] == "pay")
    assert "replicas" not in pay["spec"], "the HPA sets pay's replicas"
    ledger = next(d for d in of_kind(overlay, "StatefulSet") if d["metadata"]["name"] == "pay-ledger")
    assert ledger["spec"]["replicas"] == 1
    env = {e["name"]: e.get("value") for e in ledger["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PAY_LEDGER_URL"] == ""  # the ledger itself, not a front


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policies_admit_each_service_s_callers_only(overlay):
    """Behind the gateway the services trust the principal headers: a NetworkPolicy per workload makes sure
    nothing but the gateway and the services that call each other can send them any."""
    pods = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
            for w in of_kind(overlay, "Deployment", "StatefulSet")}
    callers = {}
    for policy in of_kind(overlay, "NetworkPolicy"):
        spec = policy["spec"]
        (selected,) = [name for name, labels in pods.items()
                       if spec["podSelector"]["matchLabels"].items() <= labels.items()]
        assert spec["policyTypes"] == ["Ingress"]
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": "http"}]
        sources = rule.get("from")
        callers[selected] = None if sources is None else {
            s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in sources if "podSelector" in s}
        if sources is not None:  # Prometheus scrapes from its namespace
            assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in sources
    assert set(callers) == set(pods), "every workload has its policy"
    assert [name for name, allowed in callers.items() if allowed is None] == ["gateway"]
    for route in ROUTES:  # the gateway reaches every service it routes to
        assert "gateway" in callers[route.service], route.service
    assert callers["pay-ledger"] == {"pay"}, "the ledger is reached only through pay's fronts"
    assert "order" in callers["pay"] and "order" in callers["order-worker"]  # the edge charges and reads
    for context in DOWNSTREAM:  # and asks how far behind the contexts run, for its admission rule
        assert "order" in callers[context], context
    for worker in ("order-worker", "mypage", "bakery"):  # Faust routes a query to the pod owning the key
        assert worker in callers[worker]
    assert all(allowed is None or allowed <= set(pods) for allowed in callers.values())
