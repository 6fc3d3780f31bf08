"""k8s/ and the Dockerfile, checked offline: no cluster, no Ray, no image build.

`kubectl kustomize` renders both overlays (skipped without kubectl); core kinds are validated
with kubernetes-validate, the RayService against KubeRay v1.7.0's CRD schema from
../shared/k8s/crds (skipped without it) and against the operator's own admission rules; then
the cross-references: serveConfigV2 is the Serve config file, the Serve config's resources
fit the worker groups, every Secret key is declared, the PodMonitors and PDBs select the
pods, and the image, the README and the RayService agree on versions and entry point.
"""

from __future__ import annotations

import copy
import functools
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml
from dockerfile_parse import DockerfileParser
from tuneserve import k8s_render
from tuneserve.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT.parent / "shared" / "k8s" / "crds"
OVERLAYS = ("dev", "prod")
SOURCES = {Path(target).parent.name: source for target, source in k8s_render.RENDERS.items()}
KUBERNETES = "1.31.0"  # the oldest Kubernetes docs/kubernetes.md supports
CRD_KINDS = {"RayService", "RayCluster", "PodMonitor"}  # not Kubernetes' own kinds

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
needs_crds = pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KubeRay CRDs in {CRDS}")


@functools.cache
def kustomize(folder: str) -> tuple[dict, ...]:
    """The objects `kubectl kustomize k8s/<folder>` renders (plain kubectl, no flags)."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "k8s" / folder)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def ray_service(overlay: str) -> dict:
    (service,) = [doc for doc in kustomize(f"overlays/{overlay}") if doc["kind"] == "RayService"]
    return service


def groups(service: dict) -> dict[str, dict]:
    """The head group (as "head") and each worker group, by name."""
    cluster = service["spec"]["rayClusterConfig"]
    return {"head": cluster["headGroupSpec"]} | {
        group["groupName"]: group for group in cluster["workerGroupSpecs"]
    }


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay's Ray container is the first


def pod_labels(name: str, group: dict) -> dict[str, str]:
    """A group's pod labels as KubeRay sets them: the template's plus its ray.io/* ones."""
    kind = "head" if name == "head" else "worker"
    return group["template"]["metadata"]["labels"] | {
        "ray.io/is-ray-node": "yes",
        "ray.io/node-type": kind,
        "ray.io/group": "headgroup" if kind == "head" else name,
    }


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (CPUs, GPUs, bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units[unit]


def node_resources(group: dict) -> dict[str, float]:
    """The Ray resources one pod of a group advertises, as KubeRay computes them."""
    limits = ray_container(group)["resources"]["limits"]
    advertised = {"CPU": quantity(limits["cpu"]), "GPU": quantity(limits.get("nvidia.com/gpu", 0))}
    return advertised | {
        name: quantity(value) for name, value in group.get("resources", {}).items()
    }


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def fits(demand: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(name, 0) >= amount for name, amount in demand.items() if amount)


def settings_of(overlay: str) -> Settings:
    (settings,) = k8s_render.application_settings(
        k8s_render.load_serve_config(ROOT / SOURCES[overlay])
    )
    return settings


def demands(settings: Settings) -> dict[str, tuple[dict[str, float], int, int]]:
    """Per Serve deployment and the training worker: Ray resources, min and max count."""
    from tuneserve.tasks.catalog import TaskCatalog

    serving, training = settings.serving, settings.training
    options = {"gateway": serving.gateway} | {
        spec.name: serving.task_server_options(spec.name)
        for spec in TaskCatalog.load(settings.tasks.modules).select(serving.served_tasks)
    }
    table = {}
    for name, option in options.items():
        low, high = (
            (option.min_replicas, option.max_replicas)
            if option.autoscaling
            else (option.num_replicas, option.num_replicas)
        )
        need = {"CPU": option.num_cpus, "GPU": option.num_gpus} | option.resources
        table[name] = (need, low, high)
    worker = {"CPU": training.cpus_per_worker, "GPU": float(training.use_gpu)}
    table["training-worker"] = (worker | training.worker_resources, 0, 1)
    return table


def pod_templates() -> list[tuple[str, dict, dict[str, str]]]:
    """Every pod template rendered anywhere: (where, template, the pod's labels)."""
    found = []
    for overlay in OVERLAYS:
        for name, group in groups(ray_service(overlay)).items():
            found.append((f"{overlay}/{name}", group["template"], pod_labels(name, group)))
    for doc in kustomize("jobs"):
        template = doc["spec"]["template"]
        found.append((f"jobs/{doc['metadata']['name']}", template, template["metadata"]["labels"]))
    return found


def containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


# ----------------------------------------------------------------------------- rendering


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_service_and_nothing_secret(overlay):
    kinds = sorted(doc["kind"] for doc in kustomize(f"overlays/{overlay}"))
    assert kinds == [
        "PodDisruptionBudget",
        "PodDisruptionBudget",
        "PodMonitor",
        "PodMonitor",
        "RayService",
        "ServiceAccount",
    ]  # no Secret (created beforehand), no ConfigMap (the serve config is local-config)
    for doc in kustomize(f"overlays/{overlay}"):
        assert doc["metadata"]["namespace"] == (
            "tuneserve-dev" if overlay == "dev" else "tuneserve"
        )
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tuneserve"


@needs_kubectl
def test_core_kinds_and_every_pod_template_validate_against_kubernetes():
    """Strict schemas of Kubernetes itself, embedded pod templates included (as PodTemplate)."""
    objects = [
        doc
        for folder in ("overlays/dev", "overlays/prod", "jobs")
        for doc in kustomize(folder)
        if doc["kind"] not in CRD_KINDS
    ]
    objects += [
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": t}
        for _, t, _ in pod_templates()
    ]
    for doc in objects:
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {error.message}")


# ------------------------------------------------------------------------ KubeRay's schema


def strict(schema: Any) -> Any:
    """A CRD schema as the API server applies it with field validation on: unknown fields
    are errors (not silently pruned), and int-or-string takes both."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: strict(value) for key, value in schema.items()}
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        schema["type"] = ["integer", "string"]
    open_ended = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and "additionalProperties" not in schema and not open_ended:
        schema["additionalProperties"] = False
    return schema


@functools.cache
def crd_schema(kind: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 18,000 lines in 0.3 s
    crd = yaml.load((CRDS / f"ray.io_{kind.lower()}s.yaml").read_text(), Loader=loader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return strict(served["schema"]["openAPIV3Schema"])


@needs_crds
@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_service_and_its_cluster_validate_against_kuberay_v1_7_crds(overlay):
    """The RayService, and the RayCluster KubeRay makes of its rayClusterConfig."""
    service = ray_service(overlay)
    assert service["apiVersion"] == "ray.io/v1"
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "tuneserve-raycluster"},
        "spec": service["spec"]["rayClusterConfig"],
    }
    for doc in (service, cluster):
        validator = jsonschema.Draft7Validator(crd_schema(doc["kind"]))
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


@needs_crds
@needs_kubectl
def test_the_strict_crd_schema_rejects_a_misspelt_field():
    """The validation above can fail: a typo KubeRay would silently prune is an error here."""
    service = copy.deepcopy(ray_service("prod"))
    service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert not jsonschema.Draft7Validator(crd_schema("RayService")).is_valid(service)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_service_passes_kuberays_admission_rules(overlay):
    """The checks of KubeRay v1.7.0's ValidateRayServiceSpec (utils/validation.go) that
    apply to this spec: the operator rejects a RayService that fails them."""
    spec = ray_service(overlay)["spec"]
    cluster = spec["rayClusterConfig"]
    upgrade = spec.get("upgradeStrategy", {})
    assert upgrade.get("type") in {"NewCluster", "NewClusterWithIncrementalUpgrade", "None"}
    if upgrade.get("type") == "NewClusterWithIncrementalUpgrade":
        assert cluster.get("enableInTreeAutoscaling") is True  # "Ray Autoscaler is required"
        options = upgrade["clusterUpgradeOptions"]
        assert options["gatewayClassName"]
        assert options["intervalSeconds"] > 0
        assert 0 <= options["stepSizePercent"] <= options.get("maxSurgePercent", 100) <= 100
    for name, group in groups({"spec": spec}).items():
        start = group.get("rayStartParams", {})
        if group.get("resources"):  # not both places (validateRayGroupResources)
            assert not {"num-cpus", "num-gpus", "memory", "resources"} & start.keys(), name
        assert "labels" not in start, name
        if name != "head":
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name
            if "idleTimeoutSeconds" in group:  # per-group idle timeouts need autoscaler v2
                assert cluster["autoscalerOptions"]["version"] == "v2", name
    if cluster.get("autoscalerOptions", {}).get("version") == "v2":
        for name, group in groups({"spec": spec}).items():
            assert group["template"]["spec"].get("restartPolicy", "Never") == "Never", name


@needs_kubectl
def test_prod_upgrades_incrementally_and_autoscales():
    spec = ray_service("prod")["spec"]
    assert spec["upgradeStrategy"]["type"] == "NewClusterWithIncrementalUpgrade"
    assert spec["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    worker_groups = groups(ray_service("prod"))
    assert [name for name in worker_groups if name != "head"] == ["cpu", "gpu"]
    for name in ("cpu", "gpu"):
        assert worker_groups[name]["maxReplicas"] > worker_groups[name]["minReplicas"], name


@needs_crds
def test_kuberay_v1_7_knows_the_incremental_upgrade_options():
    options = crd_schema("RayService")["properties"]["spec"]["properties"]["upgradeStrategy"]
    upgrade = options["properties"]["clusterUpgradeOptions"]
    assert set(upgrade["required"]) == {"gatewayClassName", "intervalSeconds", "stepSizePercent"}


@needs_kubectl
def test_dev_is_one_head_and_one_cpu_worker_without_gpus():
    dev = groups(ray_service("dev"))
    assert list(dev) == ["head", "cpu"]
    assert dev["cpu"]["minReplicas"] == dev["cpu"]["maxReplicas"] == 1
    for group in dev.values():
        assert "nvidia.com/gpu" not in ray_container(group)["resources"]["limits"]
        assert not group["template"]["spec"].get("tolerations")
    assert all(need.get("GPU", 0) == 0 for need, _, _ in demands(settings_of("dev")).values())


# ------------------------------------------------------------------------- the Serve config


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serve_config_v2_is_exactly_the_serve_config_file(overlay):
    """One source of truth: the rendered RayService carries deployments/<file> byte for byte."""
    source = (ROOT / SOURCES[overlay]).read_text()
    carried = ray_service(overlay)["spec"]["serveConfigV2"]
    assert carried == source
    assert yaml.safe_load(carried) == yaml.safe_load(source)


def test_the_overlay_copies_are_current():
    """`tuneserve k8s render --check` passes: nobody edited a copy or forgot to render."""
    stale = [str(item.target) for item in k8s_render.render(ROOT, check=True) if not item.current]
    assert not stale, f"run `tuneserve k8s render`: {stale}"


def test_render_rewrites_a_stale_copy_and_check_mode_reports_it(tmp_path):
    for target, source in k8s_render.RENDERS.items():
        for name in (target, source):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_bytes((ROOT / source).read_bytes())
        (tmp_path / target).write_text("stale\n")
    checked = k8s_render.render(tmp_path, check=True)
    assert not any(item.current for item in checked)
    assert (tmp_path / target).read_text() == "stale\n"  # check mode changed nothing
    with pytest.raises(typer.Exit):
        k8s_render.render_command(check=True, root=tmp_path)
    assert all(not item.current for item in k8s_render.render(tmp_path))
    assert all(item.current for item in k8s_render.plan(tmp_path))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serve_config_is_valid_for_serve_and_builds_settings(overlay):
    config = k8s_render.load_serve_config(ROOT / SOURCES[overlay])
    (settings,) = k8s_render.application_settings(config)  # Settings(**args), extra forbidden
    assert settings.registry.migrate_on_start is False  # the head's init container migrates
    assert str(settings.data_dir) == "/data/tuneserve"  # the pods' emptyDir
    schema = pytest.importorskip("ray.serve.schema")
    gateway, *tasks = schema.ServeDeploySchema.model_validate(config).applications
    assert gateway.import_path == k8s_render.IMPORT_PATH
    assert {task.import_path for task in tasks} == {k8s_render.TASK_IMPORT_PATH}
    assert len(tasks) == 5


def test_a_misspelt_serve_config_field_is_refused():
    config = yaml.safe_load((ROOT / SOURCES["prod"]).read_text())
    config["applications"][0]["args"]["serving"]["task_server"]["max_replica"] = 3
    with pytest.raises(ValueError, match="max_replica"):
        k8s_render.application_settings(config)


def test_each_served_task_needs_its_own_application_at_its_route():
    """Inference is one hop: a served task without its application, at another route or
    with settings of its own would be unreachable or differ from its gateway's."""
    config = yaml.safe_load((ROOT / SOURCES["prod"]).read_text())
    broken = {
        "has no application": lambda apps: apps.pop(1),
        "route_prefix must be /v1/classify": lambda apps: apps[1].update(route_prefix="/x"),
        "args must be": lambda apps: apps[1].update(args={"task": "classification"}),
        "import_path must be": lambda apps: apps[1].update(import_path="x:y"),
    }
    for message, breakage in broken.items():
        changed = copy.deepcopy(config)
        breakage(changed["applications"])
        with pytest.raises(ValueError, match=message):
            k8s_render.application_settings(changed)


# ------------------------------------------------------------------- resources and placement


def placements(overlay: str) -> dict[str, list[str]]:
    """For each deployment (and the training worker): the groups whose pods can hold one."""
    nodes = {name: node_resources(group) for name, group in groups(ray_service(overlay)).items()}
    return {
        name: [group for group, node in nodes.items() if fits(need, node)]
        for name, (need, _, _) in demands(settings_of(overlay)).items()
    }


@needs_kubectl
def test_prod_places_each_deployment_on_its_group():
    placed = placements("prod")
    assert placed.pop("gateway") == ["head"]
    assert placed.pop("chat") == ["gpu"]
    assert placed.pop("training-worker") == ["gpu"]
    assert placed == {task: ["cpu"] for task in ("classification", "ner", "qa", "translation")}


@needs_kubectl
def test_dev_places_everything_but_the_gateway_on_its_cpu_worker():
    placed = placements("dev")
    assert placed.pop("gateway") == ["head"]
    assert set(map(tuple, placed.values())) == {("cpu",)}


@needs_kubectl
def test_the_gpu_group_gives_each_pod_the_gpus_chat_and_training_ask_for():
    settings, gpu = settings_of("prod"), groups(ray_service("prod"))["gpu"]
    chat = settings.serving.task_server_options("chat")
    resources = ray_container(gpu)["resources"]
    assert quantity(resources["limits"]["nvidia.com/gpu"]) == chat.num_gpus == 1
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
    assert settings.training.use_gpu  # one GPU per Ray Train worker
    spec = gpu["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["nodeSelector"]
    assert ray_container(gpu)["image"].endswith("-cuda")  # the TORCH_VARIANT=cuda build
    assert all(
        not ray_container(g)["image"].endswith("-cuda")
        for n, g in groups(ray_service("prod")).items()
        if n != "gpu"
    )


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_groups_hold_the_serve_configs_replicas(overlay):
    """At min (max) pods, each group has the CPUs and GPUs its deployments' min (max)
    replicas ask for; a shortfall is a replica Serve can never place."""
    nodes, placed = groups(ray_service(overlay)), placements(overlay)
    table = demands(settings_of(overlay))
    for group_name, group in nodes.items():
        node = node_resources(group)
        low = 1 if group_name == "head" else group["minReplicas"]
        high = 1 if group_name == "head" else group["maxReplicas"]
        mine = [name for name, where in placed.items() if where == [group_name]]
        for resource in ("CPU", "GPU"):
            need_low = sum(table[name][0].get(resource, 0) * table[name][1] for name in mine)
            need_high = sum(table[name][0].get(resource, 0) * table[name][2] for name in mine)
            assert need_low <= node[resource] * low, (group_name, resource, "min")
            assert need_high <= node[resource] * high, (group_name, resource, "max")
    if overlay == "prod":  # training GPUs come from the autoscaler: a job must wait for them
        training = settings_of("prod").training
        assert training.wait_for_resources and training.start_timeout_s >= 300
        assert nodes["gpu"]["maxReplicas"] > nodes["gpu"]["minReplicas"]


@needs_kubectl
def test_every_container_has_requests_and_limits():
    """CPU and memory requests and limits on every container, equal on the Ray containers
    (Guaranteed QoS), and Ray never advertises more CPU than its pod has."""
    for where, template, _ in pod_templates():
        for container in containers(template):
            resources = container["resources"]
            for kind in ("cpu", "memory"):
                assert kind in resources["requests"] and kind in resources["limits"], where
            if container["name"].startswith("ray-"):
                assert resources["requests"] == resources["limits"], where
    for overlay in OVERLAYS:
        service = ray_service(overlay)
        autoscaler = service["spec"]["rayClusterConfig"]["autoscalerOptions"]["resources"]
        assert set(autoscaler) == {"requests", "limits"}
        for name, group in groups(service).items():
            limit = quantity(ray_container(group)["resources"]["limits"]["cpu"])
            assert node_resources(group)["CPU"] <= limit, (overlay, name)


# ----------------------------------------------------------------------- Secrets and labels


def secret_refs(template: dict) -> set[tuple[str, str, bool]]:
    return {
        (ref["name"], ref["key"], ref.get("optional", False))
        for container in containers(template)
        for env in container.get("env", [])
        if (ref := env.get("valueFrom", {}).get("secretKeyRef"))
    }


@needs_kubectl
def test_every_secret_key_used_is_declared_and_documented():
    declared = {
        (doc["metadata"]["name"], key)
        for doc in yaml.safe_load_all((ROOT / "k8s" / "secrets.example.yaml").read_text())
        for key in doc["stringData"]
    }
    used = set().union(*(secret_refs(template) for _, template, _ in pod_templates()))
    assert {(name, key) for name, key, _ in used} == declared
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    for name, key, _ in used:
        assert re.search(rf"create secret generic {name}\b", docs), name
        assert f"--from-literal={key}=" in docs, (name, key)
    for _, template, _ in pod_templates():  # no ConfigMap the output does not make
        for container in containers(template):
            assert not any("configMapKeyRef" in e.get("valueFrom", {}) for e in container["env"])
            assert "envFrom" not in container


@needs_kubectl
def test_every_ray_container_carries_the_same_environment():
    """Serve builds the app (Settings from the environment) on whichever node runs its build
    task: each Ray pod must give the same answer. The seeding Job gets no admin token."""
    envs = [
        container["env"]
        for where, template, _ in pod_templates()
        if not where.startswith("jobs/")
        for container in containers(template)
    ]
    assert all(env == envs[0] for env in envs)
    names = {env["name"] for env in envs[0]}
    assert {"TUNESERVE_REGISTRY__DATABASE_URL", "TUNESERVE_ADMIN_TOKEN"} <= names
    for where, template, _ in pod_templates():
        if where.startswith("jobs/"):
            for container in containers(template):
                job_env = {e["name"] for e in container["env"]}
                assert job_env - {"TUNESERVE_DATA_DIR"} == names - {"TUNESERVE_ADMIN_TOKEN"}


def selected(selector: dict[str, str]) -> list[tuple[str, dict, dict[str, str]]]:
    return [t for t in pod_templates() if selector.items() <= t[2].items()]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_monitors_select_the_ray_pods_and_their_ports(overlay):
    monitors = {
        doc["metadata"]["name"]: doc
        for doc in kustomize(f"overlays/{overlay}")
        if doc["kind"] == "PodMonitor"
    }
    in_overlay = {f"{overlay}/{name}" for name in groups(ray_service(overlay))}
    for name, expected in (
        ("tuneserve-replicas", in_overlay),
        ("tuneserve-registry", {f"{overlay}/head"}),
    ):
        spec = monitors[name]["spec"]
        pods = [t for t in selected(spec["selector"]["matchLabels"]) if t[0].startswith(overlay)]
        assert {where for where, _, _ in pods} == expected, name
        (endpoint,) = spec["podMetricsEndpoints"]
        for where, template, _ in pods:
            ports = {port["name"] for port in template["spec"]["containers"][0]["ports"]}
            assert endpoint["port"] in ports, (name, where)
    assert not [
        t
        for t in selected(monitors["tuneserve-replicas"]["spec"]["selector"]["matchLabels"])
        if t[0].startswith("jobs/")
    ]


@needs_kubectl
def test_metrics_port_is_the_one_ray_exports_on():
    for overlay in OVERLAYS:
        for name, group in groups(ray_service(overlay)).items():
            ports = {p["name"]: p["containerPort"] for p in ray_container(group)["ports"]}
            assert group["rayStartParams"]["metrics-export-port"] == str(ports["metrics"]), name
            assert ports["serve"] == 8000


@needs_kubectl
def test_disruption_budgets_select_the_head_and_the_workers():
    budgets = {
        doc["metadata"]["name"]: doc["spec"]
        for doc in kustomize("overlays/prod")
        if doc["kind"] == "PodDisruptionBudget"
    }
    head = {where for where, _, _ in selected(budgets["tuneserve-head"]["selector"]["matchLabels"])}
    workers = selected(budgets["tuneserve-workers"]["selector"]["matchLabels"])
    assert head == {"dev/head", "prod/head"}
    assert {where for where, _, _ in workers} == {"dev/cpu", "prod/cpu", "prod/gpu"}
    assert budgets["tuneserve-head"]["maxUnavailable"] == 0


# --------------------------------------------------------------------------------- probes


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_leave_the_head_to_kuberay_and_check_the_workers_proxies(overlay):
    """KubeRay deploys serveConfigV2 only once the head is Ready: an app probe on the head
    (/readyz) would deadlock. KubeRay's own probes need no wget from Ray 2.53 on."""
    service = ray_service(overlay)
    assert version(service["spec"]["rayClusterConfig"]["rayVersion"]) >= (2, 53)
    for name, group in groups(service).items():
        container = ray_container(group)
        assert "livenessProbe" not in container, name  # KubeRay's: raylet health
        if name == "head":
            assert "readinessProbe" not in container
            continue
        probe = container["readinessProbe"]["httpGet"]
        assert probe["path"] == "/-/healthz"
        assert probe["port"] in {port["name"] for port in container["ports"]}


# --------------------------------------------------------------------- image and commands


def dockerfile() -> list[dict]:
    """The Dockerfile's instructions, as dockerfile-parse reads them."""
    return DockerfileParser(fileobj=io.BytesIO((ROOT / "Dockerfile").read_bytes())).structure


def final_stage() -> list[dict]:
    instructions = dockerfile()
    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    return instructions[last_from:]


def image_user() -> int:
    (user,) = [ins["value"] for ins in final_stage() if ins["instruction"] == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user}: numeric, so that runAsNonRoot can verify it"
    return int(uid)


def test_dockerfile_is_multi_stage_pinned_and_non_root():
    froms = [i["value"] for i in dockerfile() if i["instruction"] == "FROM"]
    assert len(froms) >= 2
    for value in froms:  # a full version tag and the digest; never latest
        image = value.split()[0]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}", image), image
    assert image_user() != 0
    runs = " ".join(i["value"] for i in dockerfile() if i["instruction"] == "RUN")
    assert "models build" not in runs  # no model is built into the image


@needs_kubectl
def test_pods_run_as_the_images_user():
    for where, template, _ in pod_templates():
        context = template["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == image_user(), where
        for container in containers(template):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where


def test_entry_point_is_the_tuneserve_script_the_readme_names():
    import tomllib

    (entrypoint,) = [i["value"] for i in final_stage() if i["instruction"] == "ENTRYPOINT"]
    assert entrypoint == '["tuneserve"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tuneserve"] == "tuneserve.cli:app"
    readme = (ROOT / "README.md").read_text()
    assert 'ENTRYPOINT ["tuneserve"]' in readme and "docs/kubernetes.md" in readme


def test_image_versions_match_the_makefile_the_project_and_the_ray_service():
    args = dict(
        i["value"].split("=", 1)
        for i in dockerfile()
        if i["instruction"] == "ARG" and "=" in i["value"]
    )
    assert args["TORCH_VARIANT"] == "cpu" and "cuda)" in (ROOT / "Dockerfile").read_text()
    assert f"torch=={args['TORCH_VERSION']}" in (ROOT / "Makefile").read_text()
    base = yaml.safe_load((ROOT / "k8s" / "base" / "rayservice.yaml").read_text())
    assert base["spec"]["rayClusterConfig"]["rayVersion"] == args["RAY_VERSION"]
    floor = re.search(r'"ray\[[^\]]*\]>=([\d.]+)"', (ROOT / "pyproject.toml").read_text())[1]
    assert version(args["RAY_VERSION"]) >= version(floor)


@needs_kubectl
def test_one_image_everywhere_the_seeding_job_included():
    """Ray needs the same tuneserve on every node: one repository, two tags (CPU and CUDA)
    in prod; the seeding Job runs prod's CPU tag (set both when you release)."""
    prod = {ray_container(g)["image"] for g in groups(ray_service("prod")).values()}
    (job,) = kustomize("jobs")
    in_job = {c["image"] for c in containers(job["spec"]["template"])}
    assert len({image.rsplit(":", 1)[0] for image in prod | in_job}) == 1
    (cpu_image,) = {image for image in prod if not image.endswith("-cuda")}
    assert in_job == {cpu_image}


@needs_kubectl
def test_every_tuneserve_command_in_the_manifests_exists():
    """Init containers and Jobs call the CLI: each command must be one it has."""
    from tuneserve.cli import app

    cli = typer.main.get_command(app)
    for where, template, _ in pod_templates():
        for container in containers(template):
            command = container.get("command", [])
            if command[:1] != ["tuneserve"]:
                continue
            node = cli
            for word in command[1:]:
                assert word in getattr(node, "commands", {}), f"{where}: {' '.join(command)}"
                node = node.commands[word]


def test_the_image_guards_serves_proxy_against_oversized_bodies():
    """Every Ray process of the image starts with the proxy's body guard named."""
    from tuneserve.serving.proxy import PROXY_CALLBACK

    env = " ".join(i["value"] for i in final_stage() if i["instruction"] == "ENV")
    assert f"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH={PROXY_CALLBACK}" in env
