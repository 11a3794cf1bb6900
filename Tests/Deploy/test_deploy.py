"""Deploy/ manifests against the Kubernetes schemas (kubernetes-validate ships them), kustomize-built,
checked against each other and the Dockerfile; the Dockerfile linted with hadolint."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "Deploy"
K8S_VERSION = "1.30.0"


def built():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl (for kustomize) is not installed; make setup installs it")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY / "base")], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def test_kustomize_build_is_valid_against_the_kubernetes_schemas():
    import kubernetes_validate
    docs = built()
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_every_manifest_file_is_valid_on_its_own():
    import kubernetes_validate
    for path in sorted((DEPLOY / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for d in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_deployment_probes_drain_and_security():
    k = by_kind(built())
    dep, cfg = k["Deployment"], k["ConfigMap"]
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    # A busy pod is not killed: liveness allows a long stall before restarting.
    live = c["livenessProbe"]
    assert live["timeoutSeconds"] >= 3 and live["periodSeconds"] * live["failureThreshold"] >= 30
    drain = float(cfg["data"]["HYDRA_DRAIN_TIMEOUT"])
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > drain + sleep
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert any(m["mountPath"] == "/models" for m in c["volumeMounts"])
    for key in cfg["data"]:
        assert key.startswith("HYDRA_")
    svc, pdb, hpa = k["Service"], k["PodDisruptionBudget"], k["HorizontalPodAutoscaler"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}


def memory_budget_source(container):
    [e] = [e for e in container.get("env", []) if e["name"] == "HYDRA_MAX_MEMORY"]
    return e["valueFrom"]["resourceFieldRef"]


def test_the_memory_budget_follows_the_containers_limit():
    [c] = by_kind(built())["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert memory_budget_source(c) == {"containerName": c["name"], "resource": "limits.memory"}
    isvc = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    [k] = isvc["spec"]["predictor"]["containers"]
    assert memory_budget_source(k) == {"containerName": k["name"], "resource": "limits.memory"}


def test_kserve_and_monitoring_resources():
    isvc = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert isvc["spec"]["predictor"]["protocolVersion"] == "v2"
    [c] = isvc["spec"]["predictor"]["containers"]
    assert c["name"] == "kserve-container" and c["ports"][0]["containerPort"] == 8080
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert c["readinessProbe"]["httpGet"]["path"] in spec["paths"]
    sm = yaml.safe_load((DEPLOY / "monitoring" / "servicemonitor.yaml").read_text())
    assert sm["kind"] == "ServiceMonitor" and sm["spec"]["endpoints"][0]["path"] == "/metrics"
    svc = by_kind(built())["Service"]
    assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def test_dockerfile_is_linted_and_matches_the_manifests():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", docker, re.M) and re.search(r"^EXPOSE 8080", docker, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM", docker, re.M) and "HYDRA_MODEL_DIR=/models" in docker
    assert docker.count("\nFROM ") + docker.startswith("FROM ") == 2, "multi-stage: build and runtime"
    hadolint = shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed; make setup installs it into .venv")
    p = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
