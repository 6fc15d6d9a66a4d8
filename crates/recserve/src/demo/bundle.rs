//! The demo's shop models, tables and pipelines, compiled into the binary from
//! `examples/ecommerce/` so that `recserve demo` runs from any directory. [`extract`] writes
//! them into the data directory, where the model registry and the pipelines read them like any
//! other repository and config.

use anyhow::Context;
use include_dir::{Dir, DirEntry, include_dir};
use std::path::{Path, PathBuf};

static BUNDLE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/ecommerce");

/// What the demo serves: the extracted model repository and pipelines config.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub models: PathBuf,
    pub pipelines: PathBuf,
}

/// Files of the bundle the server needs (the training script and its docs stay out).
fn wanted(path: &Path) -> bool {
    let top = path.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    matches!(top.as_str(), "models" | "data" | "canary")
        || matches!(path.to_str(), Some("feature_spec.json" | "pipelines.toml"))
}

/// Writes the bundle under `<data_dir>/demo/`. Files whose content is already there are left
/// untouched (so a restart does not make the registry reload unchanged models).
pub fn extract(data_dir: &Path) -> anyhow::Result<Extracted> {
    let root = data_dir.join("demo");
    let mut written = 0usize;
    let mut stack: Vec<&Dir<'static>> = vec![&BUNDLE];
    while let Some(dir) = stack.pop() {
        for entry in dir.entries() {
            match entry {
                DirEntry::Dir(d) => stack.push(d),
                DirEntry::File(f) => {
                    if !wanted(f.path()) {
                        continue;
                    }
                    let target = root.join(f.path());
                    if std::fs::read(&target).is_ok_and(|existing| existing == f.contents()) {
                        continue;
                    }
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create {}", parent.display()))?;
                    }
                    std::fs::write(&target, f.contents())
                        .with_context(|| format!("cannot write {}", target.display()))?;
                    written += 1;
                }
            }
        }
    }
    let extracted = Extracted { models: root.join("models"), pipelines: root.join("pipelines.toml") };
    if !extracted.pipelines.is_file() || !extracted.models.is_dir() {
        anyhow::bail!(
            "this recserve binary was built without the demo shop (examples/ecommerce has no models/ or pipelines.toml)"
        );
    }
    tracing::info!(dir = %root.display(), files_written = written, "demo shop extracted");
    Ok(extracted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_models_and_pipelines_and_skips_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = extract(dir.path()).unwrap();
        assert!(first.pipelines.is_file());
        assert!(first.models.join("ranker").is_dir(), "ranker model missing");
        assert!(!dir.path().join("demo/train.py").exists(), "the training script is not part of the bundle");
        let model = first.models.join("ranker/1/model.onnx");
        let before = std::fs::metadata(&model).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        extract(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), before);
    }
}
