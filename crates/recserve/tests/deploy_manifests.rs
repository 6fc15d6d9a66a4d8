//! `deploy/`: the Kubernetes manifests (deploy/kubernetes), the Prometheus configuration that
//! discovers their pods (deploy/prometheus/prometheus-kubernetes.yml), the rule file and the
//! prometheus-adapter rule behind the HorizontalPodAutoscaler.
//!
//! Statically: every YAML document parses, has apiVersion, kind and metadata.name and no
//! namespace; selectors match the pod template's labels; the Service, the probes and the scrape
//! annotations name the container's ports; every Secret, ConfigMap key, volume and claim the
//! Deployment refers to exists; config.toml's paths lie on the pod's volumes and its ports are the
//! container's; the HPA targets the Deployment; the kustomization lists every manifest; the rules
//! ConfigMap is deploy/rules/recserve.rules.yml verbatim; every `RECSERVE_*` variable the
//! Deployment sets is one `recserve serve` reads.
//!
//! Live: the binary runs with the ConfigMap's config.toml and the Deployment's environment,
//! with the pod's paths mapped into a temporary directory (the model repository volume becomes
//! fixtures/models, the MySQL store SQLite); with a token in the store (so authentication is
//! enforced), the probe paths answer 200 without one, `/metrics` has the HPA's metric, the service
//! log names the replica after the pod, and every Grafana panel query is answered.
//!
//! promtool (when installed; required with RECSERVE_REQUIRE_PROMTOOL=1) checks the scrape config
//! and the rule file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const K8S: &str = "deploy/kubernetes";
const DEPLOYMENT: &str = "recserve";
const CONTAINER: &str = "recserve";
/// Read by the store directly rather than by clap (crates/store/src/pseudonym.rs): checked live,
/// by the key file the server does not create when the variable is set.
const PSEUDONYM_KEY_VARIABLE: &str = "RECSERVE_PSEUDONYM_KEY";

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every non-empty YAML document of a file.
fn yaml_docs(p: &Path) -> Vec<Value> {
    let text = read(p);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", p.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_one(p: &Path) -> Value {
    let mut docs = yaml_docs(p);
    assert_eq!(docs.len(), 1, "{}: one YAML document", p.display());
    docs.remove(0)
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// The manifests of deploy/kubernetes (top level), by file.
struct Manifests {
    /// (file name, document)
    docs: Vec<(String, Value)>,
}

impl Manifests {
    fn load() -> Manifests {
        let mut docs = Vec::new();
        for file in yaml_files(&path(K8S)) {
            for doc in yaml_docs(&path(K8S).join(&file)) {
                docs.push((file.clone(), doc));
            }
        }
        assert!(!docs.is_empty());
        Manifests { docs }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|(_, d)| d["kind"] == kind).map(|(_, d)| d).collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<_> = self.of_kind(kind).into_iter().filter(|d| d["metadata"]["name"] == name).collect();
        assert_eq!(found.len(), 1, "one {kind} named {name} in {K8S}");
        found[0]
    }

    fn deployment(&self) -> &Value {
        self.get("Deployment", DEPLOYMENT)
    }

    fn container(&self) -> &Value {
        let containers = self.deployment()["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        containers.iter().find(|c| c["name"] == CONTAINER).expect("the recserve container")
    }

    fn pod_labels(&self) -> &Value {
        &self.deployment()["spec"]["template"]["metadata"]["labels"]
    }

    /// config.toml of the recserve-config ConfigMap.
    fn config_toml(&self) -> toml::Table {
        let text = str_of(&self.get("ConfigMap", "recserve-config")["data"]["config.toml"], "config.toml");
        toml::from_str(text).unwrap_or_else(|e| panic!("config.toml of recserve-config: {e}"))
    }

    /// The container's port number for a probe's or Service's `port` (a name or a number).
    fn container_port(&self, port: &Value) -> u64 {
        let ports = self.container()["ports"].as_array().unwrap();
        match port {
            Value::Number(n) => {
                let n = n.as_u64().unwrap();
                assert!(ports.iter().any(|p| p["containerPort"] == n), "port {n} is not a container port");
                n
            }
            Value::String(name) => ports
                .iter()
                .find(|p| p["name"] == name.as_str())
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap_or_else(|| panic!("no container port named {name}")),
            other => panic!("a port is a name or a number, not {other}"),
        }
    }

    /// The files the pod sees from ConfigMaps (container path → content), and each volume
    /// mount (container path → (volume, read only)).
    fn pod_files(&self) -> (BTreeMap<String, String>, BTreeMap<String, (Value, bool)>) {
        let pod = &self.deployment()["spec"]["template"]["spec"];
        let volumes: BTreeMap<&str, &Value> =
            pod["volumes"].as_array().unwrap().iter().map(|v| (str_of(&v["name"], "volume name"), v)).collect();
        let mut files = BTreeMap::new();
        let mut mounts = BTreeMap::new();
        for m in self.container()["volumeMounts"].as_array().unwrap() {
            let name = str_of(&m["name"], "volumeMount name");
            let at = str_of(&m["mountPath"], "mountPath").trim_end_matches('/').to_string();
            let volume = *volumes.get(name).unwrap_or_else(|| panic!("volumeMount {name} has no volume"));
            assert!(m.get("subPath").is_none(), "{name}: no subPath (its files would never be updated)");
            let config_maps: Vec<&Value> = if let Some(cm) = volume.get("configMap") {
                vec![cm]
            } else if let Some(p) = volume.get("projected") {
                p["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.get("configMap").expect("configMap sources"))
                    .collect()
            } else {
                vec![]
            };
            for cm in config_maps {
                let data = &self.get("ConfigMap", str_of(&cm["name"], "configMap name"))["data"];
                let items = cm["items"].as_array().expect("configMap volumes list their items");
                for item in items {
                    let key = str_of(&item["key"], "item key");
                    let content = str_of(&data[key], &format!("key {key} of ConfigMap {}", cm["name"]));
                    let file = format!("{at}/{}", str_of(&item["path"], "item path"));
                    assert!(files.insert(file.clone(), content.to_string()).is_none(), "{file} mounted twice");
                }
            }
            if let Some(claim) = volume.get("persistentVolumeClaim") {
                let claim = str_of(&claim["claimName"], "claimName");
                self.get("PersistentVolumeClaim", claim);
            }
            mounts.insert(at, (volume.clone(), m["readOnly"] == true));
        }
        (files, mounts)
    }
}

/// *.yaml and *.yml directly in a folder, sorted.
fn yaml_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    files
}

/// `selector` (a label map) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a selector is a label map");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn every_manifest_is_well_formed_and_names_what_exists() {
    let m = Manifests::load();
    let api = BTreeMap::from([
        ("Deployment", "apps/v1"),
        ("Service", "v1"),
        ("ConfigMap", "v1"),
        ("Secret", "v1"),
        ("PersistentVolumeClaim", "v1"),
        ("HorizontalPodAutoscaler", "autoscaling/v2"),
        ("PodDisruptionBudget", "policy/v1"),
        ("Kustomization", "kustomize.config.k8s.io/v1beta1"),
    ]);
    for (file, doc) in &m.docs {
        let kind = str_of(&doc["kind"], &format!("{file}: kind"));
        let want = api.get(kind).unwrap_or_else(|| panic!("{file}: unexpected kind {kind}"));
        assert_eq!(doc["apiVersion"], *want, "{file}: apiVersion of {kind}");
        if kind != "Kustomization" {
            let name = str_of(&doc["metadata"]["name"], &format!("{file}: metadata.name"));
            assert!(!name.is_empty() && name.len() <= 63, "{file}: name {name}");
            assert!(doc["metadata"].get("namespace").is_none(), "{file}: {kind} {name} names a namespace");
        }
    }

    // Deployment: 3 replicas, a selector matching its pods, probes on the V2 health endpoints.
    let dep = m.deployment();
    assert_eq!(dep["spec"]["replicas"], 3);
    let pod_labels = m.pod_labels();
    assert!(selects(&dep["spec"]["selector"]["matchLabels"], pod_labels), "the selector matches the pod labels");
    let c = m.container();
    let config = m.config_toml();
    let http_port = config["http_port"].as_integer().expect("config.toml sets http_port") as u64;
    let grpc_port = config["grpc_port"].as_integer().expect("config.toml sets grpc_port") as u64;
    assert_eq!(m.container_port(&"http".into()), http_port, "container port http is config.toml's http_port");
    assert_eq!(m.container_port(&"grpc".into()), grpc_port, "container port grpc is config.toml's grpc_port");
    assert_eq!((http_port, grpc_port), (8000, 8001));
    for (probe, want) in [
        ("livenessProbe", "/v2/health/live"),
        ("readinessProbe", "/v2/health/ready"),
        ("startupProbe", "/v2/health/live"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], want, "{probe}");
        assert_eq!(m.container_port(&get["port"]), http_port, "{probe} asks the HTTP port");
        assert!(
            get.get("scheme").is_none() || get["scheme"] == "HTTP",
            "{probe}: plain HTTP, as config.toml sets no TLS"
        );
    }
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(c["resources"][kind][res].is_string(), "resources.{kind}.{res}");
        }
    }
    let annotations = &dep["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], http_port.to_string(), "scraped on the HTTP port");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(c["command"], serde_json::json!(["recserve"]));
    assert_eq!(c["args"][0], "serve");

    // The environment: literal values or references to Secrets that the example defines.
    let secrets: Vec<Value> = yaml_docs(&path(K8S).join("secret.example.yaml"));
    for e in c["env"].as_array().unwrap() {
        let name = str_of(&e["name"], "env name");
        assert!(name.starts_with("RECSERVE_"), "{name}");
        if let Some(r) = e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
            let secret = secrets
                .iter()
                .find(|s| s["metadata"]["name"] == r["name"])
                .unwrap_or_else(|| panic!("{name}: Secret {} is not in secret.example.yaml", r["name"]));
            assert!(
                secret["stringData"][str_of(&r["key"], "key")].is_string(),
                "{name}: the Secret has key {}",
                r["key"]
            );
        } else if let Some(f) = e.get("valueFrom").and_then(|v| v.get("fieldRef")) {
            assert_eq!(f["fieldPath"], "metadata.name", "{name}");
        } else {
            assert!(e["value"].is_string(), "{name}: a string value");
        }
    }
    let env_of = |n: &str| c["env"].as_array().unwrap().iter().find(|e| e["name"] == n);
    assert_eq!(env_of("RECSERVE_REPLICA").unwrap()["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(env_of("RECSERVE_STORE").unwrap()["valueFrom"]["secretKeyRef"]["name"], "recserve-store");
    assert!(env_of(PSEUDONYM_KEY_VARIABLE).unwrap()["valueFrom"]["secretKeyRef"].is_object());
    assert!(
        config.get("store").is_none() && config.get("pseudonym_key").is_none(),
        "secrets stay out of the ConfigMap"
    );

    // config.toml's paths are on the pod's volumes: the config file and rules from ConfigMaps,
    // the model repository on the claim, the data directory on a writable emptyDir.
    let (files, mounts) = m.pod_files();
    let config_file = str_of(&env_of("RECSERVE_CONFIG").unwrap()["value"], "RECSERVE_CONFIG");
    assert_eq!(config_file, "/etc/recserve/config.toml");
    assert!(files.contains_key(config_file), "{config_file} is mounted from a ConfigMap");
    let rules: Vec<&str> =
        config["alerting"]["rules"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(!rules.is_empty());
    for r in &rules {
        assert!(r.starts_with("/etc/recserve/rules/") && r.ends_with(".yml"), "{r}");
        assert!(files.contains_key(*r), "rule file {r} is mounted from a ConfigMap");
    }
    let repo = config["model_repository"].as_str().unwrap();
    assert!(mounts[repo].0.get("persistentVolumeClaim").is_some() && mounts[repo].1, "{repo}: the claim, read only");
    let data = config["data_dir"].as_str().unwrap();
    assert!(mounts[data].0.get("emptyDir").is_some() && !mounts[data].1, "{data}: a writable emptyDir");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);

    // The rules ConfigMap is the rule file Prometheus loads, verbatim.
    let shipped = read(&path("deploy/rules/recserve.rules.yml"));
    assert!(
        m.get("ConfigMap", "recserve-rules")["data"]["recserve.rules.yml"] == shipped.as_str(),
        "deploy/kubernetes/rules-configmap.yaml differs from deploy/rules/recserve.rules.yml: copy it in again"
    );

    // Service: selects the pods, targets the container's named ports.
    let svc = m.get("Service", "recserve");
    assert!(selects(&svc["spec"]["selector"], pod_labels), "the Service selects the Deployment's pods");
    let ports: BTreeMap<&str, &Value> =
        svc["spec"]["ports"].as_array().unwrap().iter().map(|p| (p["name"].as_str().unwrap(), p)).collect();
    assert_eq!(ports.keys().copied().collect::<Vec<_>>(), ["grpc", "http"]);
    for (name, number) in [("http", http_port), ("grpc", grpc_port)] {
        assert_eq!(ports[name]["port"], number, "Service port {name}");
        assert_eq!(ports[name]["targetPort"], name, "Service port {name} targets the container port by name");
        assert_eq!(m.container_port(&ports[name]["targetPort"]), number);
    }

    // PodDisruptionBudget and HPA.
    let pdb = m.get("PodDisruptionBudget", "recserve");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() < 3);
    let hpa = m.get("HorizontalPodAutoscaler", "recserve");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["apiVersion"], "apps/v1");
    assert_eq!(target["kind"], "Deployment");
    assert_eq!(target["name"], DEPLOYMENT, "the HPA scales the Deployment");
    let (min, max) = (hpa["spec"]["minReplicas"].as_u64().unwrap(), hpa["spec"]["maxReplicas"].as_u64().unwrap());
    assert!(min == 3 && min < max, "minReplicas {min} (the Deployment's 3), maxReplicas {max}");
    let metric = &hpa["spec"]["metrics"][0];
    assert_eq!(metric["type"], "Pods");
    assert!(hpa_metric(&m).starts_with("recserve_"));
    assert_eq!(metric["pods"]["target"]["type"], "AverageValue");
    assert!(metric["pods"]["target"]["averageValue"].is_string());
}

fn hpa_metric(m: &Manifests) -> String {
    let hpa = m.get("HorizontalPodAutoscaler", "recserve");
    str_of(&hpa["spec"]["metrics"][0]["pods"]["metric"]["name"], "HPA metric").to_string()
}

#[test]
fn the_kustomization_lists_every_manifest_and_the_example_secret_holds_placeholders() {
    let k = yaml_one(&path(K8S).join("kustomization.yaml"));
    let listed: BTreeSet<String> =
        k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    let manifests: BTreeSet<String> = yaml_files(&path(K8S))
        .into_iter()
        .filter(|f| f != "kustomization.yaml" && !f.ends_with(".example.yaml"))
        .collect();
    assert_eq!(listed, manifests, "kustomization.yaml resources and the manifests in {K8S}");
    let secret = "secret.example.yaml".to_string();
    assert!(path(K8S).join(&secret).exists() && !listed.contains(&secret), "the example Secret is not applied");
    for s in yaml_docs(&path(K8S).join(&secret)) {
        assert_eq!(s["kind"], "Secret");
        assert!(s.get("data").is_none(), "stringData only, readable placeholders");
        for (key, value) in s["stringData"].as_object().unwrap() {
            assert!(value.as_str().unwrap().contains("CHANGE-ME"), "{}/{key} is a placeholder", s["metadata"]["name"]);
        }
    }
    for image in k["images"].as_array().unwrap() {
        assert_eq!(image["name"], Manifests::load().container()["image"].as_str().unwrap().split(':').next().unwrap());
    }
}

/// The variable names `recserve serve --help` lists (`[env: NAME=]`), and the possible values
/// printed after each.
fn serve_env_help() -> BTreeMap<String, Option<Vec<String>>> {
    let out = Command::new(env!("CARGO_BIN_EXE_recserve")).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    let mut vars = BTreeMap::new();
    for part in help.split("[env: ").skip(1) {
        let Some((name, rest)) = part.split_once("=]") else { continue };
        let values = rest
            .trim_start()
            .strip_prefix("[possible values: ")
            .and_then(|r| r.split_once(']'))
            .map(|(v, _)| v.split(", ").map(String::from).collect());
        vars.insert(name.to_string(), values);
    }
    assert!(vars.contains_key("RECSERVE_HTTP_PORT"), "serve --help lists variables: {help}");
    vars
}

#[test]
fn every_variable_the_deployment_sets_is_read_by_recserve_serve() {
    let m = Manifests::load();
    let help = serve_env_help();
    for e in m.container()["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        if name == PSEUDONYM_KEY_VARIABLE {
            continue; // read by the store, checked by the live test below
        }
        match help.get(name) {
            Some(values) => {
                if let (Some(values), Some(value)) = (values, e["value"].as_str()) {
                    assert!(values.iter().any(|v| v == value), "{name}={value}: serve accepts {values:?}");
                }
            }
            None => panic!("the Deployment sets {name}, which `recserve serve --help` does not list"),
        }
    }
}

/// A running `recserve serve` and its HTTP address.
struct Server {
    child: Option<Child>,
    addr: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    fn terminate(&mut self) {
        let mut child = self.child.take().unwrap();
        assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "clean exit on SIGTERM, got {status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Spawns `cmd` (`recserve serve` set up like the pod) and waits until it listens.
fn start_like_the_pod(cmd: &mut Command) -> Server {
    cmd.stdout(Stdio::null());
    let up = recserve_testkit::spawn_listening(cmd, Duration::from_secs(90));
    let (host, port) = up.bound.rsplit_once(':').unwrap();
    assert_eq!(host, "0.0.0.0", "config.toml's host: every address of the pod");
    Server { child: Some(up.child), addr: format!("127.0.0.1:{port}"), stderr: up.stderr }
}

/// A blocking HTTP/1.1 exchange with an optional bearer token: (status, body).
fn http(addr: &str, method: &str, target: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: recserve\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    (status, if chunked { dechunk(body) } else { body.to_string() })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every Grafana panel query, those of collapsed rows included: (panel title, expr).
fn grafana_queries() -> Vec<(String, String)> {
    let dash: Value = serde_json::from_str(&read(&path("deploy/grafana/recserve-dashboard.json"))).unwrap();
    let mut panels: Vec<&Value> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            panels.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            panels.push(p);
        }
    }
    panels
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (p["title"].as_str().unwrap().to_string(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

#[test]
fn the_binary_serves_with_the_configmap_config_and_answers_the_probes() {
    let m = Manifests::load();
    let c = m.container();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pod");
    let (files, mounts) = m.pod_files();

    // The pod's file system under `root`: ConfigMap files written out, the model repository
    // claim replaced by the fixture repository, emptyDirs as empty folders.
    let fixtures = path("fixtures/models").canonicalize().unwrap();
    let host = |container_path: &str| -> PathBuf {
        let (at, (volume, _)) = mounts
            .iter()
            .filter(|(at, _)| container_path == at.as_str() || container_path.starts_with(&format!("{at}/")))
            .max_by_key(|(at, _)| at.len())
            .unwrap_or_else(|| panic!("{container_path} is on none of the pod's volumes"));
        if volume.get("persistentVolumeClaim").is_some() {
            fixtures.join(container_path[at.len()..].trim_start_matches('/'))
        } else {
            root.join(container_path.trim_start_matches('/'))
        }
    };
    for (file, content) in &files {
        let p = host(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    for (at, (volume, _)) in &mounts {
        if volume.get("emptyDir").is_some() {
            std::fs::create_dir_all(host(at)).unwrap();
        }
    }

    // config.toml with its paths mapped, and free ports instead of 8000/8001 (the static test
    // checks that those are the container ports the probes name).
    let mut config = m.config_toml();
    fn map_paths(v: &mut toml::Value, host: &dyn Fn(&str) -> PathBuf) {
        match v {
            toml::Value::String(s) if s.starts_with('/') => *s = host(s).display().to_string(),
            toml::Value::Array(a) => a.iter_mut().for_each(|v| map_paths(v, host)),
            toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| map_paths(v, host)),
            _ => {}
        }
    }
    for (_, v) in config.iter_mut() {
        map_paths(v, &host);
    }
    config.insert("http_port".into(), toml::Value::Integer(0));
    config.insert("grpc_port".into(), toml::Value::Integer(0));
    let config_path = host("/etc/recserve/config.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let data_dir = PathBuf::from(config["data_dir"].as_str().unwrap());

    // The Deployment's environment, adapted: the pod name for the downward API, the example
    // Secret's values, no RECSERVE_STORE (SQLite in the data directory instead of MySQL).
    let secrets = yaml_docs(&path(K8S).join("secret.example.yaml"));
    let pod_name = "recserve-7d4b9c6f5-x2k8q";
    let mut env: Vec<(String, String)> = Vec::new();
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            if v.starts_with('/') { host(v).display().to_string() } else { v.to_string() }
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            pod_name.to_string()
        } else if name == "RECSERVE_STORE" {
            continue;
        } else {
            let r = &e["valueFrom"]["secretKeyRef"];
            let s = secrets.iter().find(|s| s["metadata"]["name"] == r["name"]).unwrap();
            s["stringData"][r["key"].as_str().unwrap()].as_str().unwrap().to_string()
        };
        env.push((name, value));
    }
    let command = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_recserve"));
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("RECSERVE_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    };

    // A token in the store first, as README.md says: on 0.0.0.0 serve refuses to start
    // without one, and with one every request but the probes needs it.
    let out = command(&["token", "create", "--name", "prometheus", "--role", "viewer"]).output().unwrap();
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    // The secret is the line starting rs_ (RECSERVE_LOG_FORMAT=json puts log lines on stdout too).
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token =
        stdout.lines().find(|l| l.starts_with("rs_")).unwrap_or_else(|| panic!("no secret in {stdout}")).to_string();

    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let mut server = start_like_the_pod(&mut command(&args));
    let addr = server.addr.clone();

    // The probes, as the kubelet sends them: no token.
    let deadline = Instant::now() + Duration::from_secs(60);
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let target = c[probe]["httpGet"]["path"].as_str().unwrap();
        loop {
            let (status, body) = http(&addr, "GET", target, None, "");
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{probe} GET {target}: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // /metrics: closed without a token (the scrape config carries one), and it has the HPA's
    // metric as a gauge with samples.
    assert_eq!(http(&addr, "GET", "/metrics", None, "").0, 401, "tokens are enforced");
    let (status, metrics) = http(&addr, "GET", "/metrics", Some(&token), "");
    assert_eq!(status, 200, "{metrics}");
    let metric = hpa_metric(&m);
    assert!(metrics.contains(&format!("# TYPE {metric} gauge\n")), "/metrics has no gauge {metric}");
    assert!(metrics.lines().any(|l| l.starts_with(&format!("{metric}{{"))), "/metrics has no sample of {metric}");

    // RECSERVE_PSEUDONYM_KEY was used: no key file was generated.
    assert!(data_dir.is_dir());
    assert!(!data_dir.join("pseudonym.key").exists(), "RECSERVE_PSEUDONYM_KEY was ignored: a key file was made");

    // Every Grafana query, the per-replica ones included, is answered.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let queries = grafana_queries();
    assert!(queries.len() >= 20, "{} Grafana queries", queries.len());
    for (panel, expr) in &queries {
        let q = expr.replace("$instance", ".*");
        assert!(!q.contains('$'), "panel {panel}: an unknown variable in {expr}");
        let (status, body) = http(
            &addr,
            "POST",
            "/api/v1/query",
            Some(&token),
            &format!("query={}&time={now}", recserve_testkit::form_encode(&q)),
        );
        assert_eq!(status, 200, "panel {panel}: {q}\n{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "panel {panel}: {q}\n{body}");
    }

    // RECSERVE_REPLICA from the pod's name names this replica in the shared service log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(&addr, "GET", "/api/v1/logs?kind=service&limit=50", Some(&token), "");
        assert_eq!(status, 200, "{body}");
        if body.contains(&format!("\"replica\":\"{pod_name}\"")) {
            break;
        }
        assert!(Instant::now() < deadline, "no service-log record names the replica {pod_name}: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }

    server.terminate();
    let said: Vec<String> = server.stderr.try_iter().collect();
    assert!(!said.iter().any(|l| l.contains("cannot read") || l.contains("invalid config")), "{said:?}");
}

/// Runs promtool; `None` (a printed skip) when it is not installed, unless
/// RECSERVE_REQUIRE_PROMTOOL=1, which makes that a failure.
fn promtool(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Option<(bool, String)> {
    match Command::new("promtool").args(args.iter().map(|a| a.as_ref())).output() {
        Ok(out) => Some((
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )),
        Err(e) => {
            assert!(
                std::env::var("RECSERVE_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "promtool is required (RECSERVE_REQUIRE_PROMTOOL=1) but cannot run: {e}"
            );
            eprintln!("SKIPPED: promtool not found (apt-get install prometheus): {e}");
            None
        }
    }
}

#[test]
fn the_kubernetes_scrape_config_discovers_the_pods_and_promtool_accepts_it() {
    let m = Manifests::load();
    let file = path("deploy/prometheus/prometheus-kubernetes.yml");
    let config = yaml_one(&file);
    let jobs = config["scrape_configs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["job_name"], "recserve");
    assert_eq!(job["metrics_path"], "/metrics");
    assert_eq!(job["kubernetes_sd_configs"], serde_json::json!([{"role": "pod"}]));
    assert!(job["authorization"]["credentials_file"].is_string(), "a viewer token for /metrics");

    // The relabelling keeps the Deployment's pods and its http port, and labels each target.
    let relabel = job["relabel_configs"].as_array().unwrap();
    let rule = |source: &str, action: &str| -> &Value {
        relabel
            .iter()
            .find(|r| {
                r["source_labels"].as_array().is_some_and(|s| s.iter().any(|l| l == source)) && r["action"] == action
            })
            .unwrap_or_else(|| panic!("no {action} rule on {source}"))
    };
    let annotations = &m.deployment()["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/scrape"],
        rule("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "keep")["regex"]
    );
    assert_eq!(
        m.pod_labels()["app.kubernetes.io/name"],
        rule("__meta_kubernetes_pod_label_app_kubernetes_io_name", "keep")["regex"]
    );
    let port_name = rule("__meta_kubernetes_pod_container_port_name", "keep")["regex"].as_str().unwrap();
    assert_eq!(m.container_port(&port_name.into()).to_string(), annotations["prometheus.io/port"].as_str().unwrap());
    let target_of = |source: &str, target: &str| {
        relabel.iter().any(|r| {
            r["source_labels"] == serde_json::json!([source])
                && r["target_label"] == target
                && r.get("action").is_none_or(|a| a == "replace")
        })
    };
    assert!(target_of("__meta_kubernetes_pod_name", "instance"), "instance is the pod's name (= RECSERVE_REPLICA)");
    assert!(target_of("__meta_kubernetes_pod_name", "pod"), "a pod label");
    assert!(target_of("__meta_kubernetes_namespace", "namespace"), "a namespace label");
    assert!(target_of("__meta_kubernetes_pod_annotation_prometheus_io_path", "__metrics_path__"));

    // The prometheus-adapter rule serves the HPA's metric from those namespace and pod labels.
    let adapter = yaml_one(&path(K8S).join("prometheus-adapter/values.yaml"));
    let metric = hpa_metric(&m);
    let served: Vec<&Value> =
        adapter["rules"]["custom"].as_array().unwrap().iter().filter(|r| r["name"]["as"] == metric.as_str()).collect();
    assert_eq!(served.len(), 1, "one adapter rule serves {metric}");
    let r = served[0];
    assert!(r["seriesQuery"].as_str().unwrap().starts_with(&format!("{metric}{{")), "{}", r["seriesQuery"]);
    for label in ["namespace", "pod"] {
        assert_eq!(r["resources"]["overrides"][label]["resource"], label);
    }
    assert!(r["metricsQuery"].as_str().unwrap().contains("by (<<.GroupBy>>)"));

    // rule_files resolve from the config's folder to the shipped rule file.
    let rule_files: Vec<&str> = config["rule_files"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(rule_files, ["../rules/recserve.rules.yml"]);
    let resolved = file.parent().unwrap().join(rule_files[0]).canonicalize().unwrap();
    assert_eq!(resolved, path("deploy/rules/recserve.rules.yml").canonicalize().unwrap());

    // promtool: the file as shipped names the in-cluster token file, which promtool insists
    // exists, so it checks a copy whose token file is a temporary one (everything else as is;
    // rule_files made absolute as the copy lives elsewhere).
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "placeholder\n").unwrap();
    let mut copy = config.clone();
    copy["rule_files"] = serde_json::json!([resolved.display().to_string()]);
    copy["scrape_configs"][0]["authorization"]["credentials_file"] = token.display().to_string().into();
    let copy_path = dir.path().join("prometheus-kubernetes.yml");
    std::fs::write(&copy_path, serde_norway::to_string(&copy).unwrap()).unwrap();
    let Some((ok, said)) = promtool(&[&"check", &"config", &copy_path]) else { return };
    if !ok && said.contains("field kubernetes_sd_configs not found") {
        // Debian's promtool is built without Kubernetes discovery. The discovery block was
        // checked above; promtool checks the rest with a file_sd stand-in.
        eprintln!("NOTE: this promtool lacks Kubernetes service discovery; checking the rest with file_sd_configs");
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]").unwrap();
        let job = copy["scrape_configs"][0].as_object_mut().unwrap();
        job.remove("kubernetes_sd_configs");
        job.insert("file_sd_configs".into(), serde_json::json!([{"files": [targets.display().to_string()]}]));
        std::fs::write(&copy_path, serde_norway::to_string(&copy).unwrap()).unwrap();
        let (ok, said) = promtool(&[&"check", &"config", &copy_path]).unwrap();
        assert!(
            ok && said.contains("SUCCESS: 1 rule files found"),
            "promtool check config rejects {}:\n{said}",
            file.display()
        );
    } else {
        assert!(
            ok && said.contains("SUCCESS: 1 rule files found"),
            "promtool check config rejects {}:\n{said}",
            file.display()
        );
    }
}

#[test]
fn promtool_accepts_the_rule_file_the_configmap_carries() {
    let file = path("deploy/rules/recserve.rules.yml");
    let Some((ok, said)) = promtool(&[&"check", &"rules", &file]) else { return };
    assert!(ok, "promtool check rules rejects {}:\n{said}", file.display());
    assert!(said.contains("SUCCESS"), "{said}");
}
