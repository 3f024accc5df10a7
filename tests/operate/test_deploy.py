"""Tests of the deploy kit: dashboards, Prometheus rules, manifests and the unit file."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from detector import metrics_catalog
from detector.ruleload import check_rules
from detector.service.settings import ServiceSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMTOOL = "/usr/bin/promtool"
SETTING_VARIABLES = {f"BURNRATE_{name.upper()}" for name in ServiceSettings.model_fields}
EXPORTED = {
    name for entry in metrics_catalog.CATALOGUE for name in entry.exported_names
}


def load_generator() -> ModuleType:
    path = DEPLOY / "grafana" / "dashboards.py"
    spec = importlib.util.spec_from_file_location("burnrate_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def metric_names(text: str) -> set[str]:
    """Return the burnrate sample names a query text uses, recording rules excluded."""
    return set(re.findall(r"\bburnrate_[a-z_]+\b", text))


def kubernetes_documents() -> dict[str, dict[str, Any]]:
    path = DEPLOY / "kubernetes" / "burnrate.yaml"
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in documents}


def test_dashboards_match_generator() -> None:
    """The checked-in dashboard JSON equals the generator's output."""
    generator = load_generator()

    rendered = generator.render()

    assert set(rendered) == {p.name for p in (DEPLOY / "grafana").glob("*.json")}
    for name, text in rendered.items():
        assert (DEPLOY / "grafana" / name).read_text() == text, f"{name} is stale"


def test_dashboards_use_catalogued_metrics() -> None:
    """Every metric a dashboard queries is in the catalogue."""
    for path in (DEPLOY / "grafana").glob("*.json"):
        used = metric_names(path.read_text())

        assert used, path.name
        assert used <= EXPORTED, f"{path.name}: {sorted(used - EXPORTED)}"


def test_prometheus_rules_pass_promtool() -> None:
    """promtool from the Debian package accepts the rule file."""
    rules = DEPLOY / "prometheus" / "burnrate-rules.yml"

    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_rules_use_catalogued_metrics() -> None:
    """The rules read only catalogued metrics, and every alert has a runbook section."""
    path = DEPLOY / "prometheus" / "burnrate-rules.yml"
    groups = yaml.safe_load(path.read_text())["groups"]
    operations = (DEPLOY / "OPERATIONS.md").read_text().lower()
    rules = [rule for group in groups for rule in group["rules"]]

    for rule in rules:
        used = metric_names(rule["expr"])
        assert used <= EXPORTED, f"{rule}: {sorted(used - EXPORTED)}"
    for rule in (r for r in rules if "alert" in r):
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"### {anchor}" in operations.replace("`", ""), anchor


def test_kubernetes_references_hold() -> None:
    """Env names are settings, and secrets, config maps, volumes and ports resolve."""
    documents = kubernetes_documents()
    deployment = documents["Deployment/burnrate"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert set(env) <= SETTING_VARIABLES, sorted(set(env) - SETTING_VARIABLES)
    assert deployment["spec"]["replicas"] > 1
    assert int(env["BURNRATE_WEB_PORT"]["value"]) == ports["web"]
    secret_ref = env["BURNRATE_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret = documents[f"Secret/{secret_ref['name']}"]
    assert secret_ref["key"] in secret["stringData"]
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, mount
    rules_mount = next(m for m in container["volumeMounts"] if m["name"] == "rules")
    assert rules_mount["mountPath"] == env["BURNRATE_RULES"]["value"]
    config_map = documents[f"ConfigMap/{volumes['rules']['configMap']['name']}"]
    assert config_map["data"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in ports
    assert container["resources"]["requests"]["memory"]
    service = documents["Service/burnrate"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_kubernetes_rules_config_map_loads(tmp_path: Path) -> None:
    """The rules in the ConfigMap are a valid rule folder."""
    data = kubernetes_documents()["ConfigMap/burnrate-rules"]["data"]

    for name, text in data.items():
        (tmp_path / name).write_text(text)
    ruleset, problems = check_rules(tmp_path)

    assert ruleset is not None, [str(p) for p in problems]


def test_compose_references_hold() -> None:
    """Compose env names are settings, and Prometheus scrapes the published web port."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    burnrate_env = services["burnrate"]["environment"]
    prometheus_config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    target = prometheus_config["scrape_configs"][0]["static_configs"][0]["targets"][0]

    assert set(burnrate_env) <= SETTING_VARIABLES, sorted(set(burnrate_env) - SETTING_VARIABLES)
    assert target == "burnrate:6066"
    assert "127.0.0.1:6066:6066" in services["burnrate"]["ports"]
    for service in ("kafka", "burnrate", "prometheus", "grafana"):
        assert service in services
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def test_systemd_unit_names_settings() -> None:
    """The unit's Environment lines name settings, and it runs burnrate serve."""
    unit = (DEPLOY / "systemd" / "burnrate.service").read_text()

    names = set(re.findall(r"^Environment=(BURNRATE_[A-Z_]+)=", unit, re.MULTILINE))
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE)

    assert names
    assert names <= SETTING_VARIABLES
    assert exec_start is not None
    assert exec_start.group(1).endswith("burnrate serve")
