//! The model repository on disk, Triton-style: `<repo>/<model>/<version>/model.onnx` with an
//! optional `<repo>/<model>/config.toml`. This module only reads the directory tree; loading
//! and serving are the registry's job. Names starting with '.' (and version directories whose
//! name is not a number) are ignored, so a version being written as `.<n>.tmp-<pid>` is never
//! seen half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of a version's model inside its version directory.
pub const MODEL_FILE: &str = "model.onnx";

/// One model directory as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    pub name: String,
    pub path: PathBuf,
    /// Version number → path of its `model.onnx`, for every numeric version directory that
    /// holds one.
    pub versions: BTreeMap<u64, PathBuf>,
}

/// Errors reading the repository tree.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("model repository {path} cannot be read: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("model '{name}' is not in the repository {path}")]
    NoSuchModel { name: String, path: String },
}

/// A model repository rooted at a directory.
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
}

impl Repository {
    pub fn new(root: impl Into<PathBuf>) -> Repository {
        Repository { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every model directory, sorted by name. Entries that are not directories, and names
    /// starting with '.', are ignored.
    pub fn scan(&self) -> Result<Vec<ModelDir>, RepositoryError> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|source| RepositoryError::Unreadable { path: self.root.display().to_string(), source })?;
        let mut models = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            models.push(read_model_dir(&name, &entry.path()));
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    /// One model directory by name.
    pub fn model(&self, name: &str) -> Result<ModelDir, RepositoryError> {
        let path = self.root.join(name);
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') || !path.is_dir() {
            if !self.root.is_dir() {
                return Err(RepositoryError::Unreadable {
                    path: self.root.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
                });
            }
            return Err(RepositoryError::NoSuchModel { name: name.to_string(), path: self.root.display().to_string() });
        }
        Ok(read_model_dir(name, &path))
    }
}

fn read_model_dir(name: &str, path: &Path) -> ModelDir {
    let mut versions = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let Ok(version) = entry.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            let file = entry.path().join(MODEL_FILE);
            if file.is_file() {
                versions.insert(version, file);
            }
        }
    }
    ModelDir { name: name.to_string(), path: path.to_path_buf(), versions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn scan_finds_numeric_versions_with_model_files() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/1/model.onnx"));
        touch(&dir.path().join("a/2/model.onnx"));
        touch(&dir.path().join("a/3/other.bin"));
        touch(&dir.path().join("a/latest/model.onnx"));
        touch(&dir.path().join("a/.4.tmp-123/model.onnx"));
        touch(&dir.path().join("b/10/model.onnx"));
        touch(&dir.path().join(".hidden/1/model.onnx"));
        touch(&dir.path().join("README.md"));
        let models = Repository::new(dir.path()).scan().unwrap();
        let names: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(models[0].versions.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(models[1].versions.keys().copied().collect::<Vec<_>>(), [10]);
    }

    #[test]
    fn missing_root_and_model_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let gone = Repository::new(dir.path().join("nope"));
        assert!(matches!(gone.scan(), Err(RepositoryError::Unreadable { .. })));
        let repo = Repository::new(dir.path());
        assert!(matches!(repo.model("x"), Err(RepositoryError::NoSuchModel { .. })));
        assert!(matches!(repo.model("../etc"), Err(RepositoryError::NoSuchModel { .. })));
    }
}
