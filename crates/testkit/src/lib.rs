//! Test support shared by the crates' integration tests: where the committed fixture models
//! and golden outputs are, a private copy of the fixture repository per test, and a server
//! with both transports on port 0.

use recserve_engine::Tensor;
use recserve_engine::json::JsonTensor;
use recserve_server::AppState;
use recserve_serving::{ModelRegistry, tract_loader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The committed `fixtures/` folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The committed fixture model repository.
pub fn fixture_models() -> PathBuf {
    fixtures_dir().join("models")
}

/// Copies the named fixture models into a fresh temporary repository.
pub fn repository_with(models: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for m in models {
        copy_dir(&fixture_models().join(m), &dir.path().join(m));
    }
    dir
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// One golden case: named inputs and expected outputs.
pub struct GoldenCase {
    pub inputs: Vec<(String, Tensor)>,
    pub outputs: Vec<(String, Tensor)>,
}

/// The golden cases of a fixture model (`fixtures/golden/<model>.json`).
pub fn golden(model: &str) -> Vec<GoldenCase> {
    #[derive(serde::Deserialize)]
    struct File<'a> {
        #[serde(borrow)]
        cases: Vec<Case<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Case<'a> {
        #[serde(borrow)]
        inputs: Vec<JsonTensor<'a>>,
        #[serde(borrow)]
        outputs: Vec<JsonTensor<'a>>,
    }
    let path = fixtures_dir().join("golden").join(format!("{model}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let file: File = serde_json::from_str(&text).expect("golden file parses");
    let named =
        |ts: &[JsonTensor]| ts.iter().map(|t| (t.name.clone(), t.to_tensor().expect("golden tensor"))).collect();
    file.cases.iter().map(|c| GoldenCase { inputs: named(&c.inputs), outputs: named(&c.outputs) }).collect()
}

/// The raw text of a golden file (also a valid validation-samples file).
pub fn golden_path(model: &str) -> PathBuf {
    fixtures_dir().join("golden").join(format!("{model}.json"))
}

/// A registry over `repo`, loaded.
pub async fn loaded_registry(repo: &Path) -> Arc<ModelRegistry> {
    let registry = ModelRegistry::new(repo, tract_loader());
    registry.poll().await;
    registry
}

/// The e-commerce example: the demo shop's models, tables and `pipelines.toml`.
pub fn shop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecommerce")
}

/// Server state serving the e-commerce example: its model repository and its pipelines
/// (`/v1/recommend`, `/v1/feedback`).
pub async fn shop_state() -> AppState {
    shop_state_at(&shop_dir()).await
}

/// As [`shop_state`], over a copy of the e-commerce example in `dir` (for tests that change
/// its tables).
pub async fn shop_state_at(dir: &Path) -> AppState {
    let registry = loaded_registry(&dir.join("models")).await;
    let config = dir.join("pipelines.toml");
    let pipelines = tokio::task::spawn_blocking(move || recserve_pipeline::Pipelines::load(&config))
        .await
        .expect("pipeline loader")
        .unwrap_or_else(|e| panic!("the example's pipelines do not load: {e}"));
    let mut state = AppState::new(registry.clone());
    state.shop = Some(Arc::new(recserve_server::shop::ShopApi::new(Arc::new(pipelines), registry)));
    state
}

/// A server with REST and gRPC on loopback port 0, stopped when dropped.
pub struct TestServer {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(state: AppState) -> TestServer {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let (h, g) = (http.local_addr().expect("addr"), grpc.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(recserve_server::serve(state.clone(), http, grpc, async move {
            let _ = rx.await;
        }));
        TestServer { http: h, grpc: g, state, stop: Some(tx) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts two tensors agree: floats within `tol`, everything else exactly.
pub fn assert_close(got: &Tensor, want: &Tensor, tol: f64, what: &str) {
    if let Err(e) = recserve_serving::gate::compare(got, want, tol) {
        panic!("{what}: {e}");
    }
}

/// `s` percent-encoded for a query string or form body (unreserved characters kept).
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A spawned `recserve serve` (or `demo`) that printed where it listens.
pub struct Listening {
    pub child: std::process::Child,
    /// The address from its `recserve: HTTP on http://ADDR` line.
    pub bound: String,
    /// Its stderr lines after that one.
    pub stderr: std::sync::mpsc::Receiver<String>,
}

/// Spawns `cmd` with stderr piped and waits (up to `within`) for the line saying where it
/// listens; panics with everything it said when it exits first or takes longer.
pub fn spawn_listening(cmd: &mut std::process::Command, within: std::time::Duration) -> Listening {
    use std::io::BufRead;
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + within;
    let mut said = Vec::new();
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("recserve: HTTP on http://") {
                    let bound = rest.split_whitespace().next().unwrap_or_default().to_string();
                    return Listening { child, bound, stderr: rx };
                }
                said.push(line);
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{cmd:?} exited ({status}) before listening:\n{}", said.join("\n"));
                }
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not listen within {within:?}:\n{}", said.join("\n"));
        }
    }
}
