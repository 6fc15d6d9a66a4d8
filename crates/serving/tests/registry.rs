use crate::fake::{text_loader, x};
use recserve_engine::TensorData;
use recserve_serving::{ModelRegistry, NamedTensor, ServingError};
use std::path::Path;
use std::sync::Arc;

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn input(v: f32) -> Vec<NamedTensor> {
    vec![NamedTensor { name: "x".into(), tensor: x(&[[v, v]]) }]
}

async fn answer(reg: &ModelRegistry, model: &str, version: Option<&str>) -> Result<(u64, f32), ServingError> {
    let v = reg.resolve(model, version)?;
    let out = v.infer(input(1.0)).await?;
    let TensorData::F32(d) = &out[0].data else { panic!() };
    Ok((v.version, d[0]))
}

#[tokio::test]
async fn latest_version_serves_and_a_failing_newer_one_does_not_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "m/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    assert!(!reg.is_ready());
    reg.poll().await;
    assert!(reg.is_ready());
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 2.0));

    put(dir.path(), "m/2/model.onnx", "broken");
    reg.poll().await;
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 2.0), "version 1 keeps serving");
    let index = reg.index();
    let v2 = index.iter().find(|r| r.version.as_deref() == Some("2")).unwrap();
    assert_eq!(v2.state, Some("UNAVAILABLE"));
    assert!(v2.reason.as_deref().unwrap().contains("not a model: broken"), "{v2:?}");
    let e = answer(&reg, "m", Some("2")).await.unwrap_err();
    assert!(matches!(e, ServingError::NotReady { .. }) && e.to_string().contains("failed validation"), "{e}");

    put(dir.path(), "m/3/model.onnx", "triple");
    reg.poll().await;
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (3, 3.0));
    assert!(
        matches!(answer(&reg, "m", Some("1")).await, Err(ServingError::VersionNotFound { .. })),
        "latest 1 drops v1"
    );
}

#[tokio::test]
async fn a_corrupt_file_replacing_the_serving_version_leaves_the_loaded_model_serving() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "m/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    reg.poll().await;
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 2.0));

    put(dir.path(), "m/1/model.onnx", "broken, half-copied");
    reg.poll().await;
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 2.0), "the model loaded before keeps serving");
    let said = reg.entry("m").unwrap().error.clone().unwrap_or_default();
    assert!(said.contains("version 1 serves its previous model file") && said.contains("not a model"), "{said}");
    reg.poll().await;
    assert_eq!(answer(&reg, "m", Some("1")).await.unwrap(), (1, 2.0), "and after the next poll");
    assert!(reg.entry("m").unwrap().error.clone().unwrap_or_default().contains("previous model file"));

    put(dir.path(), "m/1/model.onnx", "triple");
    reg.poll().await;
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 3.0), "a good file replaces it");
    assert_eq!(reg.entry("m").unwrap().error, None);
}

#[tokio::test]
async fn version_policies_choose_what_serves() {
    let dir = tempfile::tempdir().unwrap();
    for v in 1..=3 {
        put(dir.path(), &format!("all/{v}/model.onnx"), "double");
        put(dir.path(), &format!("two/{v}/model.onnx"), "double");
        put(dir.path(), &format!("pick/{v}/model.onnx"), "double");
    }
    put(dir.path(), "all/config.toml", "[version_policy]\nall = true\n");
    put(dir.path(), "two/config.toml", "[version_policy]\nlatest = 2\n");
    put(dir.path(), "pick/config.toml", "[version_policy]\nspecific = [1, 3]\n");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    reg.poll().await;
    let ready = |m: &str| reg.entry(m).unwrap().ready().map(|v| v.version).collect::<Vec<_>>();
    assert_eq!(ready("all"), vec![3, 2, 1]);
    assert_eq!(ready("two"), vec![3, 2]);
    assert_eq!(ready("pick"), vec![3, 1]);
    assert_eq!(answer(&reg, "pick", Some("1")).await.unwrap(), (1, 2.0));
}

#[tokio::test]
async fn unknown_models_and_versions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "m/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    reg.poll().await;
    let e = answer(&reg, "nope", None).await.unwrap_err();
    assert_eq!(e.to_string(), "unknown model 'nope'");
    let e = answer(&reg, "m", Some("9")).await.unwrap_err();
    assert_eq!(e.to_string(), "unknown version '9' of model 'm'");
    let e = answer(&reg, "m", Some("abc")).await.unwrap_err();
    assert!(matches!(e, ServingError::VersionNotFound { .. }));
}

#[tokio::test]
async fn unload_and_load_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "m/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    reg.poll().await;
    reg.unload_model("m").await.unwrap();
    let e = answer(&reg, "m", None).await.unwrap_err();
    assert!(e.to_string().contains("unloaded"), "{e}");
    reg.poll().await;
    assert!(answer(&reg, "m", None).await.is_err(), "polling does not reload an unloaded model");
    reg.load_model("m").await.unwrap();
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 2.0));
    assert!(matches!(reg.load_model("nope").await, Err(ServingError::ModelNotFound { .. })));
    assert!(matches!(reg.unload_model("nope").await, Err(ServingError::ModelNotFound { .. })));
    put(dir.path(), "bad/1/model.onnx", "broken");
    let e = reg.load_model("bad").await.unwrap_err();
    assert!(e.to_string().contains("not a model"), "{e}");
}

#[tokio::test]
async fn an_invalid_config_keeps_the_serving_version_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "m/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    reg.poll().await;
    put(dir.path(), "m/config.toml", "max_batch_size = 'lots'\n");
    reg.poll().await;
    assert_eq!(answer(&reg, "m", None).await.unwrap(), (1, 2.0));
    let entry = reg.entry("m").unwrap();
    assert!(entry.error.as_deref().unwrap().contains("config.toml"), "{:?}", entry.error);
}

#[tokio::test]
async fn a_removed_model_directory_unloads_the_model_and_an_unreadable_repository_keeps_all() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "a/1/model.onnx", "double");
    put(dir.path(), "b/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path().join(""), text_loader());
    reg.poll().await;
    std::fs::remove_dir_all(dir.path().join("b")).unwrap();
    reg.poll().await;
    assert!(matches!(answer(&reg, "b", None).await, Err(ServingError::ModelNotFound { .. })));

    let moved = tempfile::tempdir().unwrap();
    let gone = moved.path().join("repo");
    std::fs::rename(dir.path(), &gone).unwrap();
    reg.poll().await;
    assert_eq!(answer(&reg, "a", None).await.unwrap(), (1, 2.0), "loaded model still serves");
    std::fs::rename(&gone, dir.path()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_a_new_version_swaps_in() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "m/1/model.onnx", "double");
    let reg = ModelRegistry::new(dir.path(), text_loader());
    reg.poll().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (reg, stop) = (reg.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (v, _) = answer(&reg, "m", None).await.expect("no request may fail during a swap");
                seen.insert(v);
                n += 1;
                tokio::task::yield_now().await;
            }
            (n, seen)
        }));
    }
    for v in 2..=4 {
        put(dir.path(), &format!("m/{v}/model.onnx"), "triple");
        reg.poll().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut versions = std::collections::BTreeSet::new();
    for c in clients {
        let (n, seen) = c.await.unwrap();
        assert!(n > 0);
        versions.extend(seen);
    }
    assert!(versions.contains(&4), "{versions:?}");
}
