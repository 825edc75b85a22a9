//! The Kubernetes manifests and the Dockerfile. The kustomize base and the example overlay are
//! rendered with `kubectl kustomize` (Debian's kubernetes-client, installed by scripts/deps.sh,
//! or any kubectl) and the output is parsed and checked: the expected objects, one replica
//! recreated rather than rolled, probes on /healthz and /readyz, a non-root pod, a grace period
//! longer than the ConfigMap's `service.shutdown_timeout`, Kafka settings from the Secret, a
//! configuration Spiral accepts, and references that resolve (ConfigMap, Secret, selectors).
//! The Dockerfile cannot be built here (no Docker engine): it is checked for what it must do.

mod ops;

use std::collections::BTreeMap;

use ops::{repo, run};
use serde::Deserialize;
use serde_yaml::Value;
use spiral::config::Config;

#[test]
fn the_example_overlay_renders_a_complete_deployment() {
    let objects = render("deploy/kubernetes/overlays/example");
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "PodMonitor",
    ] {
        assert!(
            objects.contains_key(kind),
            "no {kind} in {:?}",
            objects.keys()
        );
    }
    check_deployment(&objects, Some("spiral-example"));
    let pod_labels = &one(&objects, "Deployment")["spec"]["template"]["metadata"]["labels"];
    let monitor = one(&objects, "PodMonitor");
    assert_selects(
        &monitor["spec"]["selector"]["matchLabels"],
        pod_labels,
        "PodMonitor",
    );
    assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
    assert_eq!(
        pod_labels["app.kubernetes.io/name"], "spiral",
        "job=\"spiral\" for the alerts"
    );
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "http");
    assert_eq!(
        one(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/spiral:0.1.0"
    );
}

#[test]
fn the_base_renders_on_its_own() {
    let objects = render("deploy/kubernetes/base");
    for kind in [
        "ConfigMap",
        "Service",
        "Deployment",
        "PersistentVolumeClaim",
    ] {
        assert!(
            objects.contains_key(kind),
            "no {kind} in {:?}",
            objects.keys()
        );
    }
    check_deployment(&objects, None);
}

#[test]
fn the_dockerfile_builds_the_readme_binary_and_runs_it_as_non_root() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).expect("Dockerfile");
    let readme = std::fs::read_to_string(repo("README.md")).expect("README.md");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains(" AS builder"), "{froms:?}");
    assert!(readme.contains("--release"), "README builds in release");
    assert!(
        lines.iter().any(|l| l.contains("cargo build --release")),
        "the builder runs cargo build --release"
    );
    assert!(
        dockerfile.contains("COPY --from=builder"),
        "runtime copies the built binary"
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runs as non-root: {user}"
    );
    assert!(
        dockerfile.contains(r#"CMD ["run", "--config", "/etc/spiral/spiral.toml"]"#),
        "runs spiral run --config /etc/spiral/spiral.toml"
    );
    let ignore = std::fs::read_to_string(repo(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ stays out of the context"
    );
}

/// The configuration files of the manifests are valid for Spiral (as `spiral run` would load
/// them) and keep the funnels of config/spiral.toml.
#[test]
fn the_manifest_configurations_are_valid() {
    let example = Config::load(&repo("config/spiral.toml")).expect("config/spiral.toml");
    for file in [
        "deploy/kubernetes/base/spiral.toml",
        "deploy/kubernetes/overlays/example/spiral.toml",
    ] {
        let config = Config::load(&repo(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(config.service.kafka.is_some(), "{file}: [kafka]");
        assert_eq!(
            config.service.http.listen.ip().to_string(),
            "0.0.0.0",
            "{file}: reachable from outside the pod"
        );
        assert_eq!(
            config.funnels, example.funnels,
            "{file}: funnels as config/spiral.toml"
        );
    }
}

fn check_deployment(objects: &BTreeMap<String, Vec<Value>>, namespace: Option<&str>) {
    let deployment = one(objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1, "one instance per consumer group");
    assert_eq!(
        spec["strategy"]["type"], "Recreate",
        "never two members at once"
    );
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_selects(&spec["selector"]["matchLabels"], labels, "Deployment");
    if let Some(ns) = namespace {
        for (kind, list) in objects {
            for object in list.iter().filter(|_| kind != "Namespace") {
                assert_eq!(object["metadata"]["namespace"], ns, "{kind} namespace");
            }
        }
    }

    // Non-root, no privilege escalation.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        pod["securityContext"]["runAsUser"]
            .as_u64()
            .is_some_and(|u| u > 0)
    );
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        c["args"],
        serde_yaml::from_str::<Value>(r#"["run", "--config", "/etc/spiral/spiral.toml"]"#).unwrap()
    );

    // Probes on the service's endpoints, on the port the configuration listens on.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let port = &c["ports"][0];
    assert_eq!(port["name"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    let annotations = &spec["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"]
            .as_str()
            .and_then(|p| p.parse::<u64>().ok()),
        port["containerPort"].as_u64()
    );

    // Resources requested (from the measured memory, docs/performance.md).
    assert!(c["resources"]["requests"]["memory"].as_str().is_some());
    assert!(c["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());

    // The configuration: mounted from the rendered ConfigMap, valid, and the grace period
    // longer than its shutdown deadline.
    let configmap = one(objects, "ConfigMap");
    let toml = configmap["data"]["spiral.toml"]
        .as_str()
        .expect("spiral.toml in the ConfigMap");
    let config = Config::parse(toml, "ConfigMap spiral.toml").expect("a valid configuration");
    let volume = pod["volumes"]
        .as_sequence()
        .and_then(|v| v.iter().find(|v| v["configMap"].is_mapping()))
        .expect("a configMap volume");
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    let mount = c["volumeMounts"]
        .as_sequence()
        .and_then(|m| m.iter().find(|m| m["name"] == volume["name"]))
        .expect("the config volume mounted");
    assert_eq!(mount["mountPath"], "/etc/spiral");
    // Checkpoints go to a mounted persistent volume (the root filesystem is read-only).
    let Some(spiral::config::StateLocation::Dir(state_dir)) = &config.service.state.location else {
        panic!("[state] dir expected in the ConfigMap");
    };
    let state_mount = c["volumeMounts"]
        .as_sequence()
        .and_then(|m| {
            m.iter()
                .find(|m| m["mountPath"].as_str() == state_dir.to_str())
        })
        .expect("the state directory is a mounted volume");
    assert_ne!(state_mount["readOnly"], true);
    let state_volume = pod["volumes"]
        .as_sequence()
        .and_then(|v| v.iter().find(|v| v["name"] == state_mount["name"]))
        .expect("the state volume");
    let claim = &state_volume["persistentVolumeClaim"]["claimName"];
    assert!(
        objects
            .get("PersistentVolumeClaim")
            .is_some_and(|pvcs| pvcs.iter().any(|p| p["metadata"]["name"] == *claim)),
        "the claim {claim:?} is rendered"
    );
    assert_eq!(
        config.service.http.listen.port() as u64,
        port["containerPort"].as_u64().expect("containerPort")
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    let deadline = config.service.shutdown_timeout.as_secs_f64();
    assert!(
        grace as f64 > deadline,
        "terminationGracePeriodSeconds {grace} must exceed service.shutdown_timeout {deadline} s"
    );

    // Kafka from the Secret; the HTTP address for the pod network.
    let env: BTreeMap<String, Value> = c["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or("").to_string(), e.clone()))
        .collect();
    assert_eq!(env["SPIRAL_HTTP_LISTEN"]["value"], "0.0.0.0:9464");
    for var in [
        "SPIRAL_KAFKA_BROKERS",
        "SPIRAL_KAFKA_SASL_USERNAME",
        "SPIRAL_KAFKA_SASL_PASSWORD",
    ] {
        let secret = &env[var]["valueFrom"]["secretKeyRef"];
        assert!(secret["name"].is_string(), "{var} from a Secret");
        if let Some(rendered) = objects.get("Secret") {
            let secret_object = &rendered[0];
            assert_eq!(secret["name"], secret_object["metadata"]["name"], "{var}");
            let key = secret["key"].as_str().expect("key");
            assert!(
                secret_object["data"][key].is_string(),
                "{var}: key {key} in the Secret"
            );
        }
    }
    assert!(
        env["SPIRAL_KAFKA_BROKERS"]["valueFrom"]["secretKeyRef"]["optional"].is_null(),
        "the brokers are required"
    );

    // The Service reaches the pod's http port.
    let service = one(objects, "Service");
    assert_selects(&service["spec"]["selector"], labels, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
}

fn assert_selects(selector: &Value, labels: &Value, what: &str) {
    let selector = selector
        .as_mapping()
        .unwrap_or_else(|| panic!("{what}: selector"));
    assert!(!selector.is_empty(), "{what}: empty selector");
    for (k, v) in selector {
        assert_eq!(&labels[k], v, "{what} selects label {k:?}");
    }
}

fn one<'a>(objects: &'a BTreeMap<String, Vec<Value>>, kind: &str) -> &'a Value {
    let list = &objects[kind];
    assert_eq!(list.len(), 1, "one {kind}");
    &list[0]
}

/// `kubectl kustomize DIR`, parsed: objects by kind.
fn render(dir: &str) -> BTreeMap<String, Vec<Value>> {
    let yaml = run("kubectl", &["kustomize", dir]);
    let mut objects: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for document in serde_yaml::Deserializer::from_str(&yaml) {
        let object = Value::deserialize(document).expect("valid YAML from kustomize");
        if object.is_null() {
            continue;
        }
        let kind = object["kind"].as_str().expect("kind").to_string();
        assert!(object["apiVersion"].is_string(), "{kind}: apiVersion");
        assert!(object["metadata"]["name"].is_string(), "{kind}: name");
        objects.entry(kind).or_default().push(object);
    }
    objects
}

/// The Grafana dashboard: unique panel ids on a 24-column grid, a query in every target, the
/// `funnel` and `stage` variables from `label_values`, and every funnel-scoped query filtered
/// by them. (Its queries are evaluated against a real Prometheus in tests/ops_prometheus.rs.)
#[test]
fn the_dashboard_is_well_formed() {
    let text =
        std::fs::read_to_string(repo("deploy/grafana/dashboards/spiral.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(dashboard["uid"], "spiral-funnel");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    for name in ["funnel", "stage"] {
        let v = variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"));
        let query = v["definition"].as_str().expect("definition");
        assert!(
            query.starts_with("label_values(spiral_stage_entered_total") && query.contains(name),
            "{name}: {query}"
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(
            ids.insert(panel["id"].as_u64().expect("id")),
            "{title}: duplicate id"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && grid["h"].as_u64().unwrap() > 0,
            "{title}: gridPos"
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(
                !expr.is_empty() && target["refId"].is_string(),
                "{title}: target"
            );
            if expr.contains("funnel=") {
                assert!(expr.contains(r#"funnel="$funnel""#), "{title}: {expr}");
            }
            if expr.contains("stage=") && !expr.contains("stage=~\"$stage\"") {
                panic!("{title}: stage filter without $stage: {expr}");
            }
        }
    }
    assert!(ids.len() >= 20, "{} panels", ids.len());
}
