//! Deployments through the registry, with the committed `mlp` fixture model on tract: arm
//! versions are loaded beside the policy's choice, routing splits and sticks, rollbacks retire,
//! promotions move the default, refused deployments leave the old one serving, new versions are
//! registered atomically through the gate, latency checks report against the budget.

use recserve_serving::{Deployment, ModelRegistry, NamedTensor, ServingError, VersionState, route_key, tract_loader};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MODEL: &str = "mlp";

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

fn mlp_onnx() -> Vec<u8> {
    std::fs::read(fixture("models/mlp/1/model.onnx")).unwrap()
}

/// A repository holding `mlp` as versions `versions` (copies of the fixture), and `config`.
fn repository(versions: &[u64], config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for v in versions {
        let version_dir = dir.path().join(MODEL).join(v.to_string());
        std::fs::create_dir_all(&version_dir).unwrap();
        std::fs::write(version_dir.join("model.onnx"), mlp_onnx()).unwrap();
    }
    std::fs::create_dir_all(dir.path().join(MODEL)).unwrap();
    if let Some(text) = config {
        std::fs::write(dir.path().join(MODEL).join("config.toml"), text).unwrap();
    }
    dir
}

fn ready(reg: &ModelRegistry, model: &str) -> BTreeSet<u64> {
    reg.entry(model).unwrap().ready().map(|v| v.version).collect()
}

fn default_version(reg: &ModelRegistry) -> u64 {
    reg.resolve(MODEL, None).unwrap().version
}

/// Routes `n` synthetic users; counts (version, arm) and checks each user sticks to its arm.
fn split(reg: &ModelRegistry, n: usize) -> BTreeMap<(u64, String), usize> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let key = route_key(MODEL, &format!("user-{i}"));
        let routed = reg.route(MODEL, key).unwrap();
        let again = reg.route(MODEL, key).unwrap();
        assert_eq!((routed.version.version, &routed.arm), (again.version.version, &again.arm), "user {i} sticks");
        *counts.entry((routed.version.version, routed.arm.to_string())).or_default() += 1;
    }
    counts
}

async fn score(reg: &ModelRegistry, key: u64) -> f32 {
    let routed = reg.route(MODEL, key).unwrap();
    let signature = &routed.version.signature;
    let inputs = recserve_serving::gate::warmup_inputs(signature, 1)
        .into_iter()
        .zip(&signature.inputs)
        .map(|(tensor, spec)| NamedTensor { name: spec.name.clone(), tensor })
        .collect();
    let out = routed.version.infer(inputs).await.unwrap();
    let recserve_engine::TensorData::F32(d) = &out[0].data else { panic!("mlp scores are FP32") };
    d[0]
}

#[tokio::test]
async fn canary_loads_both_versions_splits_traffic_rolls_back_and_promotes() {
    let repo = repository(&[1, 2], None); // default policy: latest 1
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([2]), "without a deployment the policy alone decides");
    assert!(reg.deployment(MODEL).is_none());

    reg.apply_deployment(Deployment::stable(MODEL, 1)).await.unwrap();
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]), "the stable arm's version is loaded beside the policy's");
    assert_eq!(default_version(&reg), 1);
    assert_eq!(split(&reg, 1000), BTreeMap::from([((1, "stable".to_string()), 1000)]));

    let (applied, ()) = reg.update_deployment(MODEL, |d| d.start_canary(2, 30.0).map(|d| (d, ()))).await.unwrap();
    assert_eq!(applied.describe(), "stable v1 70%, canary v2 30%");
    assert_eq!(reg.deployment(MODEL).unwrap(), applied);
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]));
    assert_eq!(default_version(&reg), 1, "requests naming no version and no user stay on stable");
    let counts = split(&reg, 10_000);
    assert_eq!(counts.len(), 2, "{counts:?}");
    let canary = counts[&(2, "canary".to_string())];
    assert!((2_800..=3_200).contains(&canary), "30% canary got {canary} of 10000: {counts:?}");
    assert_eq!(counts[&(1, "stable".to_string())], 10_000 - canary);
    assert!(score(&reg, route_key(MODEL, "user-1")).await.is_finite(), "a routed version answers");

    let (rolled, retired) = reg.update_deployment(MODEL, |d| d.rollback()).await.unwrap();
    assert_eq!(retired, vec![2]);
    assert_eq!(rolled.retired, BTreeSet::from([2]));
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1]), "the rolled-back version is unloaded");
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1]), "a retired version stays unloaded after a poll");
    assert!(matches!(reg.resolve(MODEL, Some("2")), Err(ServingError::VersionNotFound { .. })));
    assert_eq!(split(&reg, 500), BTreeMap::from([((1, "stable".to_string()), 500)]));

    // Deploying it explicitly again un-retires it; promoting makes it the default.
    reg.update_deployment(MODEL, |d| d.start_canary(2, 50.0).map(|d| (d, ()))).await.unwrap();
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]));
    let (promoted, version) = reg.update_deployment(MODEL, |d| d.promote(None)).await.unwrap();
    assert_eq!((promoted.describe().as_str(), version), ("stable v2 100%", 2));
    assert_eq!(default_version(&reg), 2);
    assert_eq!(split(&reg, 500), BTreeMap::from([((2, "stable".to_string()), 500)]));
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([2]), "v1 is neither an arm nor the policy's choice any more");
}

#[tokio::test]
async fn a_deployment_whose_version_fails_the_gate_is_refused_and_the_old_one_keeps_serving() {
    let repo = repository(&[1], None);
    std::fs::create_dir_all(repo.path().join("mlp/2")).unwrap();
    std::fs::write(repo.path().join("mlp/2/model.onnx"), b"this is not an onnx file").unwrap();
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1]), "the policy steps back to v1");
    reg.apply_deployment(Deployment::stable(MODEL, 1)).await.unwrap();

    let canary = Deployment::stable(MODEL, 1).start_canary(2, 10.0).unwrap();
    let e = reg.apply_deployment(canary).await.unwrap_err();
    assert!(matches!(e, ServingError::Deployment(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("version 2") && m.contains("failed the validation gate") && m.contains("load failed"), "{m}");
    assert!(m.contains("current deployment keeps serving"), "{m}");
    assert_eq!(reg.deployment(MODEL).unwrap().describe(), "stable v1 100%");
    assert_eq!(split(&reg, 200), BTreeMap::from([((1, "stable".to_string()), 200)]));

    // The same through update_deployment, and the other refusals, with their error kinds.
    let e = reg.update_deployment(MODEL, |d| d.start_canary(2, 10.0).map(|d| (d, ()))).await.unwrap_err();
    assert!(e.to_string().contains("failed the validation gate"), "{e}");
    let e = reg.update_deployment(MODEL, |d| d.start_canary(2, 120.0).map(|d| (d, ()))).await.unwrap_err();
    assert!(matches!(e, ServingError::BadDeployment(_)) && e.to_string().contains("canary percent"), "{e}");
    let e = reg.update_deployment(MODEL, |d| d.rollback()).await.unwrap_err();
    assert!(matches!(e, ServingError::Deployment(_)) && e.to_string().contains("nothing to roll back"), "{e}");
    let e = reg.apply_deployment(Deployment::stable(MODEL, 1).start_canary(7, 10.0).unwrap()).await.unwrap_err();
    assert!(matches!(e, ServingError::VersionNotFound { .. }), "{e:?}");
    let e = reg.apply_deployment(Deployment::stable("nope", 1)).await.unwrap_err();
    assert!(matches!(e, ServingError::ModelNotFound { .. }), "{e:?}");
    let mut malformed = Deployment::stable(MODEL, 1);
    malformed.arms[0].weight = 10;
    let e = reg.apply_deployment(malformed).await.unwrap_err();
    assert!(matches!(e, ServingError::BadDeployment(_)) && e.to_string().contains("sum to 10 basis points"), "{e}");
    assert_eq!(reg.deployment(MODEL).unwrap().describe(), "stable v1 100%");
}

#[tokio::test]
async fn restored_deployments_are_loaded_by_the_first_poll_and_broken_arms_fall_back_to_stable() {
    let repo = repository(&[1, 2, 3], None);
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    let mut canary = Deployment::stable(MODEL, 1).start_canary(2, 50.0).unwrap();
    canary.retired.insert(3);
    let mut invalid = Deployment::stable("other", 1);
    invalid.arms.clear();
    reg.restore_deployments(vec![canary.clone(), invalid]);
    assert_eq!(reg.deployments().keys().collect::<Vec<_>>(), ["mlp"], "the invalid one is skipped");
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]), "arms loaded, the retired v3 not");
    assert_eq!(default_version(&reg), 1);
    let counts = split(&reg, 2000);
    assert_eq!(counts.keys().map(|(v, _)| *v).collect::<BTreeSet<_>>(), BTreeSet::from([1, 2]));

    // The canary's file is replaced by garbage: the new file fails the gate on the next poll,
    // and the canary keeps serving the model it loaded before (the error says so).
    std::fs::write(repo.path().join("mlp/2/model.onnx"), b"garbage, and longer than before").unwrap();
    reg.poll().await;
    let entry = reg.entry(MODEL).unwrap();
    assert!(matches!(entry.versions.get(&2), Some(VersionState::Ready(_))));
    assert!(entry.error.as_deref().unwrap_or_default().contains("version 2 serves its previous model file"));
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]));
    assert_eq!(reg.deployment(MODEL).unwrap().as_ref(), &canary, "the deployment itself is unchanged");

    // A canary that never loaded fails the gate: requests meant for it go to stable instead.
    let fresh = ModelRegistry::new(repo.path(), tract_loader());
    fresh.restore_deployments(vec![canary.clone()]);
    fresh.poll().await;
    let entry = fresh.entry(MODEL).unwrap();
    assert!(matches!(entry.versions.get(&2), Some(VersionState::Failed { .. })));
    assert_eq!(ready(&fresh, MODEL), BTreeSet::from([1]));
    assert_eq!(split(&fresh, 2000), BTreeMap::from([((1, "stable".to_string()), 2000)]));

    // A deployment naming a version that is not on disk: the other versions serve.
    std::fs::remove_dir_all(repo.path().join("mlp/2")).unwrap();
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1]));
    assert_eq!(default_version(&reg), 1);
}

#[tokio::test]
async fn register_version_writes_and_gates_a_new_version_that_takes_no_traffic_yet() {
    let repo = repository(&[1], Some("[validation]\nsamples = \"samples.json\"\n"));
    // The model-level samples make v1 pass; uploaded ones land in the version directory.
    std::fs::copy(fixture("golden/mlp.json"), repo.path().join("mlp/samples.json")).unwrap();
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    assert!(reg.deployment(MODEL).is_none());

    let golden = std::fs::read(fixture("golden/mlp.json")).unwrap();
    let v = reg.register_version(MODEL, &mlp_onnx(), Some(&golden)).await.unwrap();
    assert_eq!(v, 2);
    assert_eq!(std::fs::read(repo.path().join("mlp/2/model.onnx")).unwrap(), mlp_onnx());
    assert_eq!(std::fs::read(repo.path().join("mlp/2/samples.json")).unwrap(), golden);
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]), "the new version is loaded");
    assert_eq!(reg.deployment(MODEL).unwrap().describe(), "stable v1 100%", "the serving version was pinned first");
    assert_eq!(default_version(&reg), 1);
    assert_eq!(split(&reg, 500), BTreeMap::from([((1, "stable".to_string()), 500)]), "no traffic before a canary");
    assert_eq!(reg.resolve(MODEL, Some("2")).unwrap().version, 2, "but it answers when named");

    // Refusals: garbage ONNX, and a real model whose uploaded samples it does not reproduce.
    let e = reg.register_version(MODEL, b"not onnx at all", None).await.unwrap_err();
    assert!(matches!(e, ServingError::BadDeployment(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("version 3") && m.contains("failed the validation gate") && m.contains("load failed"), "{m}");
    let wrong = String::from_utf8(golden.clone()).unwrap().replace("\"data\": [0.4565", "\"data\": [9.4565");
    assert_ne!(wrong.as_bytes(), golden.as_slice());
    let e = reg.register_version(MODEL, &mlp_onnx(), Some(wrong.as_bytes())).await.unwrap_err();
    assert!(e.to_string().contains("validation case 0"), "{e}");
    let mut left: Vec<String> = std::fs::read_dir(repo.path().join(MODEL))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["1", "2", "config.toml", "samples.json"], "refused versions leave nothing behind");
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]));

    // The registered version can then be canaried; a poll keeps it.
    reg.update_deployment(MODEL, |d| d.start_canary(2, 20.0).map(|d| (d, ()))).await.unwrap();
    reg.poll().await;
    assert_eq!(ready(&reg, MODEL), BTreeSet::from([1, 2]));
    assert!(split(&reg, 2000).contains_key(&(2, "canary".to_string())));
}

#[tokio::test]
async fn register_version_creates_a_new_model_and_un_retires_a_reused_number() {
    let repo = tempfile::tempdir().unwrap();
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    assert_eq!(reg.register_version("fresh", &mlp_onnx(), None).await.unwrap(), 1);
    assert_eq!(reg.resolve("fresh", None).unwrap().version, 1, "a new model serves its only version");
    assert!(reg.deployment("fresh").is_none());
    let e = reg.register_version("fresh2", b"junk", None).await.unwrap_err();
    assert!(e.to_string().contains("failed the validation gate"), "{e}");
    assert!(!repo.path().join("fresh2").exists(), "a model directory made for a refused version is removed");
    for bad in ["", ".hidden", "a/b", "..", "a\\b"] {
        let e = reg.register_version(bad, &mlp_onnx(), None).await.unwrap_err();
        assert!(matches!(e, ServingError::BadDeployment(_)) && e.to_string().contains("not valid"), "{bad}: {e}");
    }

    // v2 is canaried, rolled back (retired) and its directory deleted; the next registration
    // reuses the number 2 for a new file, which is not retired.
    assert_eq!(reg.register_version("fresh", &mlp_onnx(), None).await.unwrap(), 2);
    reg.update_deployment("fresh", |d| d.start_canary(2, 10.0).map(|d| (d, ()))).await.unwrap();
    reg.update_deployment("fresh", |d| d.rollback()).await.unwrap();
    std::fs::remove_dir_all(repo.path().join("fresh/2")).unwrap();
    assert_eq!(reg.register_version("fresh", &mlp_onnx(), None).await.unwrap(), 2);
    assert!(reg.deployment("fresh").unwrap().retired.is_empty());
    assert_eq!(ready(&reg, "fresh"), BTreeSet::from([1, 2]));
}

#[tokio::test]
async fn register_version_refuses_an_unloaded_model() {
    let repo = repository(&[1], None);
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    reg.unload_model(MODEL).await.unwrap();
    let e = reg.register_version(MODEL, &mlp_onnx(), None).await.unwrap_err();
    assert!(matches!(e, ServingError::Deployment(_)) && e.to_string().contains("unloaded"), "{e}");
    let e = reg.apply_deployment(Deployment::stable(MODEL, 1)).await.unwrap_err();
    assert!(e.to_string().contains("unloaded"), "{e}");
    assert!(!repo.path().join("mlp/2").exists());
}

#[tokio::test]
async fn latency_check_reports_percentiles_against_the_budget() {
    let repo = repository(&[1], None);
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    let report = reg.latency_check(MODEL, 1, 20).await.unwrap();
    assert_eq!(report.requests, 20);
    assert!(0.0 < report.p50_ms && report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms, "{report:?}");
    assert_eq!(report.budget_ms, None);
    assert!(report.within_budget, "no budget: within");
    assert_eq!(reg.resolve(MODEL, Some("1")).unwrap().stats.success.get(), 20, "requests take the normal path");

    std::fs::write(repo.path().join("mlp/config.toml"), "latency_budget_ms = 1e-6\n").unwrap();
    reg.poll().await;
    let report = reg.latency_check(MODEL, 1, 5).await.unwrap();
    assert_eq!(report.budget_ms, Some(1e-6));
    assert!(!report.within_budget, "{report:?}");

    let e = reg.latency_check(MODEL, 1, 0).await.unwrap_err();
    assert!(matches!(e, ServingError::BadDeployment(_)), "{e:?}");
    assert!(matches!(reg.latency_check(MODEL, 9, 1).await, Err(ServingError::VersionNotFound { .. })));
    assert!(matches!(reg.latency_check("nope", 1, 1).await, Err(ServingError::ModelNotFound { .. })));
}

#[tokio::test]
async fn route_without_deployment_uses_the_default_version() {
    let repo = repository(&[1, 2], Some("[version_policy]\nall = true\n"));
    let reg = ModelRegistry::new(repo.path(), tract_loader());
    reg.poll().await;
    let routed = reg.route(MODEL, 42).unwrap();
    assert_eq!((routed.version.version, &*routed.arm), (2, "stable"));
    assert!(matches!(reg.route("nope", 1), Err(ServingError::ModelNotFound { .. })));
    let _: Arc<str> = routed.arm;
}
