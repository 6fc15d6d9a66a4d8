//! Integration tests of the tract engine on the committed fixture models (`fixtures/`, made by
//! `fixtures/make_fixtures.py`; the golden outputs were computed with onnxruntime).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use half::f16;
use recserve_engine::{DataType, Dim, Engine, EngineError, Tensor, TensorData, TractEngine};
use serde_json::Value;

/// Every model in the fixture repository.
const MODELS: [&str; 13] = [
    "mlp",
    "embedding",
    "multi_io",
    "fixed_shape",
    "identity_all_types",
    "lightgbm_regressor",
    "lightgbm_classifier",
    "lightgbm_multiclass",
    "xgboost_regressor",
    "xgboost_classifier",
    "sklearn_gbdt_regressor",
    "sklearn_rf_classifier",
    "sklearn_rf_regressor",
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn model_path(name: &str) -> PathBuf {
    fixtures().join("models").join(name).join("1").join("model.onnx")
}

fn load(name: &str) -> TractEngine {
    match TractEngine::load(&model_path(name)) {
        Ok(e) => e,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn f32s(data: &TensorData) -> &[f32] {
    match data {
        TensorData::F32(v) => v,
        other => panic!("expected FP32, got {}", other.datatype()),
    }
}

fn tensor_f32(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::F32(data)).expect("consistent tensor")
}

mod golden {
    //! Golden files: `{"model", "cases": [{"inputs": [...], "outputs": [...]}]}` with V2
    //! datatype names and flat data. In `<model>.nan.json`, `null` in FP32 data is NaN.
    use super::*;

    pub struct Named {
        pub name: String,
        pub tensor: Tensor,
    }

    pub struct Case {
        pub inputs: Vec<Named>,
        pub outputs: Vec<Named>,
    }

    fn numbers<T>(data: &[Value], f: impl Fn(&Value) -> Option<T>) -> Vec<T> {
        data.iter().map(|v| f(v).unwrap_or_else(|| panic!("bad element {v}"))).collect()
    }

    fn float(v: &Value) -> Option<f64> {
        if v.is_null() { Some(f64::NAN) } else { v.as_f64() }
    }

    fn tensor(v: &Value) -> Named {
        let name = v["name"].as_str().expect("name").to_string();
        let datatype = DataType::from_wire_name(v["datatype"].as_str().expect("datatype")).expect("known datatype");
        let shape: Vec<usize> =
            v["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
        let d = v["data"].as_array().expect("data");
        let int = |v: &Value| v.as_i64();
        let uint = |v: &Value| v.as_u64();
        let data = match datatype {
            DataType::Bool => TensorData::Bool(numbers(d, Value::as_bool)),
            DataType::U8 => TensorData::U8(numbers(d, |v| uint(v).and_then(|n| n.try_into().ok()))),
            DataType::U16 => TensorData::U16(numbers(d, |v| uint(v).and_then(|n| n.try_into().ok()))),
            DataType::U32 => TensorData::U32(numbers(d, |v| uint(v).and_then(|n| n.try_into().ok()))),
            DataType::U64 => TensorData::U64(numbers(d, uint)),
            DataType::I8 => TensorData::I8(numbers(d, |v| int(v).and_then(|n| n.try_into().ok()))),
            DataType::I16 => TensorData::I16(numbers(d, |v| int(v).and_then(|n| n.try_into().ok()))),
            DataType::I32 => TensorData::I32(numbers(d, |v| int(v).and_then(|n| n.try_into().ok()))),
            DataType::I64 => TensorData::I64(numbers(d, int)),
            DataType::F16 => TensorData::F16(numbers(d, |v| float(v).map(f16::from_f64))),
            DataType::F32 => TensorData::F32(numbers(d, |v| float(v).map(|x| x as f32))),
            DataType::F64 => TensorData::F64(numbers(d, float)),
            DataType::Bytes => TensorData::Bytes(numbers(d, |v| v.as_str().map(|s| s.as_bytes().to_vec()))),
        };
        Named { name, tensor: Tensor::new(shape, data).expect("golden tensor is consistent") }
    }

    pub fn read(file: &str) -> Vec<Case> {
        let path = fixtures().join("golden").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text).expect("golden file is JSON");
        json["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| Case {
                inputs: c["inputs"].as_array().expect("inputs").iter().map(tensor).collect(),
                outputs: c["outputs"].as_array().expect("outputs").iter().map(tensor).collect(),
            })
            .collect()
    }

    /// Floats within 1e-4 absolute (NaN equals NaN), everything else exactly; `Err` says where
    /// they differ.
    fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
        if got.shape != want.shape || got.datatype() != want.datatype() {
            return Err(format!("got {} {:?}, want {} {:?}", got.datatype(), got.shape, want.datatype(), want.shape));
        }
        let close = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4;
        let pairs: Vec<(f64, f64)> = match (&got.data, &want.data) {
            (TensorData::F32(a), TensorData::F32(b)) => a.iter().zip(b).map(|(x, y)| (*x as f64, *y as f64)).collect(),
            (TensorData::F64(a), TensorData::F64(b)) => a.iter().zip(b).map(|(x, y)| (*x, *y)).collect(),
            (TensorData::F16(a), TensorData::F16(b)) => {
                a.iter().zip(b).map(|(x, y)| (x.to_f64(), y.to_f64())).collect()
            }
            (a, b) if a == b => return Ok(()),
            (a, b) => return Err(format!("got {a:?}, want {b:?}")),
        };
        match pairs.into_iter().enumerate().find(|(_, (a, b))| !close(*a, *b)) {
            Some((i, (a, b))) => Err(format!("element {i}: got {a}, want {b}")),
            None => Ok(()),
        }
    }

    /// Runs every case of a golden file; returns the number of cases and the mismatches.
    fn check_file(model: &str, file: &str) -> (usize, Vec<String>) {
        let engine = load(model);
        let cases = read(file);
        assert!(!cases.is_empty(), "{file} has no cases");
        let mut failures = vec![];
        for (ix, case) in cases.iter().enumerate() {
            let names: Vec<&str> = engine.signature().inputs.iter().map(|s| s.name.as_str()).collect();
            let golden_names: Vec<&str> = case.inputs.iter().map(|n| n.name.as_str()).collect();
            assert_eq!(names, golden_names, "{file} case {ix}: input order");
            let inputs = case.inputs.iter().map(|n| n.tensor.clone()).collect();
            let outputs = engine.run(inputs).unwrap_or_else(|e| panic!("{file} case {ix}: {e}"));
            assert_eq!(outputs.len(), case.outputs.len(), "{file} case {ix}: output count");
            for ((got, want), spec) in outputs.iter().zip(&case.outputs).zip(&engine.signature().outputs) {
                assert_eq!(spec.name, want.name, "{file} case {ix}: output order");
                if let Err(e) = compare(got, &want.tensor) {
                    failures.push(format!("{file} case {ix} output {}: {e}", want.name));
                }
            }
        }
        (cases.len(), failures)
    }

    fn check_all(models: &[&str], suffix: &str) -> usize {
        let mut checked = 0;
        let mut failures = vec![];
        for model in models {
            let (n, f) = check_file(model, &format!("{model}{suffix}.json"));
            checked += n;
            failures.extend(f);
        }
        assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
        checked
    }

    #[test]
    fn every_model_matches_onnxruntime() {
        let checked = check_all(&super::MODELS, "");
        assert!(checked >= 2 * super::MODELS.len(), "only {checked} cases");
    }

    #[test]
    fn missing_values_follow_the_trained_default_branch() {
        check_all(&["lightgbm_regressor", "lightgbm_classifier", "xgboost_regressor", "xgboost_classifier"], ".nan");
    }

    #[test]
    fn fixture_list_is_complete() {
        let mut on_disk: Vec<String> = std::fs::read_dir(fixtures().join("models"))
            .expect("models dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = super::MODELS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }
}

mod signature {
    use super::*;
    use Dim::{Fixed, Variable};
    use recserve_engine::TensorSpec;

    fn spec(name: &str, datatype: DataType, shape: &[Dim]) -> TensorSpec {
        TensorSpec { name: name.into(), datatype, shape: shape.to_vec() }
    }

    #[test]
    fn hand_built_graphs() {
        let s = load("mlp").signature().clone();
        assert_eq!(s.inputs, vec![spec("features", DataType::F32, &[Variable, Fixed(16)])]);
        assert_eq!(s.outputs, vec![spec("score", DataType::F32, &[Variable, Fixed(1)])]);
        assert!(s.batched);

        let s = load("embedding").signature().clone();
        assert_eq!(s.inputs, vec![spec("item_ids", DataType::I64, &[Variable, Fixed(4)])]);
        assert_eq!(s.outputs, vec![spec("embedding", DataType::F32, &[Variable, Fixed(8)])]);
        assert!(s.batched);

        let s = load("multi_io").signature().clone();
        assert_eq!(
            s.inputs,
            vec![
                spec("user", DataType::F32, &[Variable, Fixed(8)]),
                spec("item", DataType::F32, &[Variable, Fixed(8)])
            ]
        );
        assert_eq!(
            s.outputs,
            vec![spec("dot", DataType::F32, &[Variable, Fixed(1)]), spec("sum", DataType::F32, &[Variable, Fixed(8)])]
        );
        assert!(s.batched);
    }

    #[test]
    fn fixed_shape_model_is_not_batched() {
        let s = load("fixed_shape").signature().clone();
        assert_eq!(s.inputs, vec![spec("x", DataType::F32, &[Fixed(4)])]);
        assert_eq!(s.outputs, vec![spec("y", DataType::F32, &[Fixed(2)])]);
        assert!(!s.batched);
        assert_eq!(s.inputs[0].wire_shape(), vec![4]);
    }

    #[test]
    fn every_v2_datatype_round_trips_through_identity() {
        let s = load("identity_all_types").signature().clone();
        assert_eq!(s.inputs.len(), DataType::ALL.len());
        for (dt, (i, o)) in DataType::ALL.iter().zip(s.inputs.iter().zip(&s.outputs)) {
            assert_eq!(*i, spec(&format!("in_{}", dt.wire_name()), *dt, &[Variable, Fixed(3)]));
            assert_eq!(*o, spec(&format!("out_{}", dt.wire_name()), *dt, &[Variable, Fixed(3)]));
        }
        assert!(s.batched);
    }

    #[test]
    fn tree_models_with_unnamed_batch_dimension() {
        for name in ["lightgbm_regressor", "xgboost_regressor", "sklearn_gbdt_regressor", "sklearn_rf_regressor"] {
            let s = load(name).signature().clone();
            assert_eq!(s.inputs, vec![spec("features", DataType::F32, &[Variable, Fixed(12)])], "{name}");
            assert_eq!(s.outputs, vec![spec("variable", DataType::F32, &[Variable, Fixed(1)])], "{name}");
            assert!(s.batched, "{name}");
        }
        // lightgbm_* declare `label` as [1] in the file (a converter slip); the engine reports
        // what the graph computes.
        for (name, classes) in [
            ("lightgbm_classifier", 2),
            ("lightgbm_multiclass", 3),
            ("xgboost_classifier", 2),
            ("sklearn_rf_classifier", 2),
        ] {
            let s = load(name).signature().clone();
            assert_eq!(s.inputs, vec![spec("features", DataType::F32, &[Variable, Fixed(12)])], "{name}");
            assert_eq!(
                s.outputs,
                vec![
                    spec("label", DataType::I64, &[Variable]),
                    spec("probabilities", DataType::F32, &[Variable, Fixed(classes)]),
                ],
                "{name}"
            );
            assert!(s.batched, "{name}");
        }
    }
}

mod bad_input {
    use super::*;

    fn bad_input(result: Result<Vec<Tensor>, EngineError>) -> (String, String) {
        match result {
            Err(EngineError::BadInput { name, reason }) => (name, reason),
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[test]
    fn wrong_input_count() {
        let e = load("multi_io");
        let one = tensor_f32(&[1, 8], vec![0.0; 8]);
        match e.run(vec![one.clone()]) {
            Err(EngineError::InputCount { expected: 2, received: 1 }) => {}
            other => panic!("expected InputCount, got {other:?}"),
        }
        match e.run(vec![one.clone(), one.clone(), one]) {
            Err(EngineError::InputCount { expected: 2, received: 3 }) => {}
            other => panic!("expected InputCount, got {other:?}"),
        }
    }

    #[test]
    fn wrong_datatype_names_input_expected_and_received() {
        let e = load("mlp");
        let t = Tensor::new(vec![1, 16], TensorData::I64(vec![0; 16])).expect("tensor");
        let (name, reason) = bad_input(e.run(vec![t]));
        assert_eq!(name, "features");
        assert!(reason.contains("FP32") && reason.contains("INT64"), "{reason}");
    }

    #[test]
    fn wrong_trailing_dim_and_rank() {
        let e = load("mlp");
        let (name, reason) = bad_input(e.run(vec![tensor_f32(&[2, 15], vec![0.0; 30])]));
        assert_eq!(name, "features");
        assert!(reason.contains("[-1, 16]") && reason.contains("[2, 15]"), "{reason}");
        let (_, reason) = bad_input(e.run(vec![tensor_f32(&[16], vec![0.0; 16])]));
        assert!(reason.contains("[-1, 16]") && reason.contains("[16]"), "{reason}");

        let fixed = load("fixed_shape");
        let (name, reason) = bad_input(fixed.run(vec![tensor_f32(&[1, 4], vec![0.0; 4])]));
        assert_eq!(name, "x");
        assert!(reason.contains("[4]") && reason.contains("[1, 4]"), "{reason}");
    }

    #[test]
    fn data_length_must_match_shape() {
        // Tensor's fields are public, so an inconsistent one can reach the engine.
        let t = Tensor { shape: vec![2, 16], data: TensorData::F32(vec![0.0; 16]) };
        let (_, reason) = bad_input(load("mlp").run(vec![t]));
        assert!(reason.contains("32") && reason.contains("16"), "{reason}");
    }

    #[test]
    fn batch_sizes_of_inputs_must_agree() {
        let e = load("multi_io");
        let (name, reason) =
            bad_input(e.run(vec![tensor_f32(&[2, 8], vec![0.0; 16]), tensor_f32(&[3, 8], vec![0.0; 24])]));
        assert_eq!(name, "item");
        assert!(reason.contains("3") && reason.contains("'user'"), "{reason}");
    }

    #[test]
    fn bytes_must_be_utf8() {
        let e = load("identity_all_types");
        let mut inputs: Vec<Tensor> = e
            .signature()
            .inputs
            .iter()
            .map(|s| {
                let data = match s.datatype.fixed_size() {
                    Some(size) => TensorData::from_le_bytes(s.datatype, &vec![0u8; 3 * size]).expect("zeros"),
                    None => TensorData::Bytes(vec![b"a".to_vec(); 3]),
                };
                Tensor::new(vec![1, 3], data).expect("tensor")
            })
            .collect();
        // Identity works on zeros of every type...
        let out = e.run(inputs.clone()).expect("zeros run");
        assert_eq!(out.len(), 13);
        // ...but ONNX strings are UTF-8.
        let last = inputs.len() - 1;
        inputs[last] =
            Tensor::new(vec![1, 3], TensorData::Bytes(vec![vec![0xff, 0xfe], vec![], b"ok".to_vec()])).expect("tensor");
        let (name, reason) = bad_input(e.run(inputs));
        assert_eq!(name, "in_BYTES");
        assert!(reason.contains("UTF-8"), "{reason}");
    }

    #[test]
    fn out_of_range_embedding_id_is_an_error_not_a_panic() {
        let e = load("embedding");
        let t = Tensor::new(vec![1, 4], TensorData::I64(vec![1, 2, 3, 5000])).expect("tensor");
        match e.run(vec![t]) {
            Err(EngineError::Run(_)) => {}
            other => panic!("expected a Run error, got {other:?}"),
        }
    }
}

mod loading {
    use super::*;

    fn expect_load_error(result: Result<TractEngine, EngineError>, what: &str) {
        match result {
            Err(EngineError::Load { .. }) => {}
            other => panic!("{what}: expected EngineError::Load, got {other:?}"),
        }
    }

    #[test]
    fn truncated_and_garbage_files_are_load_errors() {
        let dir = std::env::temp_dir().join(format!("recserve-engine-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for model in ["mlp", "lightgbm_regressor", "identity_all_types"] {
            let bytes = std::fs::read(model_path(model)).expect("fixture");
            for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
                let path = dir.join(format!("{model}-{cut}.onnx"));
                std::fs::write(&path, &bytes[..cut]).expect("write");
                expect_load_error(TractEngine::load(&path), &format!("{model} cut at {cut}"));
                expect_load_error(TractEngine::load_bytes(&bytes[..cut]), &format!("{model} bytes cut at {cut}"));
            }
        }
        expect_load_error(TractEngine::load_bytes(b""), "empty");
        expect_load_error(TractEngine::load_bytes(b"this is not a protobuf at all \xff\xff\xff"), "garbage");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        match TractEngine::load(&fixtures().join("models/no_such_model/1/model.onnx")) {
            Err(EngineError::Io { path, .. }) => assert!(path.contains("no_such_model")),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn load_bytes_matches_load() {
        let bytes = std::fs::read(model_path("xgboost_regressor")).expect("fixture");
        let a = TractEngine::load_bytes(&bytes).expect("loads");
        let b = load("xgboost_regressor");
        assert_eq!(a.signature(), b.signature());
        let x = tensor_f32(&[2, 12], (0..24).map(|i| i as f32 * 0.1).collect());
        assert_eq!(a.run(vec![x.clone()]).expect("a"), b.run(vec![x]).expect("b"));
    }
}

mod batching {
    use super::*;

    fn rows(n: usize, width: usize, seed: u32) -> Vec<f32> {
        // Small deterministic pseudo-random values.
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n * width)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Every batch size runs on the one plan, and row i of a batch equals the row run alone.
    #[test]
    fn any_batch_size_runs_and_rows_are_independent() {
        for (model, width) in [("mlp", 16), ("lightgbm_regressor", 12), ("sklearn_rf_classifier", 12)] {
            let e = load(model);
            for n in [1, 2, 7, 64, 300] {
                let x = rows(n, width, n as u32);
                let batch = e.run(vec![tensor_f32(&[n, width], x.clone())]).expect("batch");
                assert_eq!(batch[0].shape[0], n, "{model}");
                for i in [0, n / 2, n - 1] {
                    let single =
                        e.run(vec![tensor_f32(&[1, width], x[i * width..(i + 1) * width].to_vec())]).expect("row");
                    for (b, s) in batch.iter().zip(&single) {
                        let row_len: usize = b.shape[1..].iter().product();
                        let part = b.split_rows(&[i, 1, n - i - 1]).expect("split")[1].clone();
                        assert_eq!(part.data.len(), row_len);
                        match (&part.data, &s.data) {
                            (TensorData::F32(a), TensorData::F32(b)) => {
                                for (x, y) in a.iter().zip(b) {
                                    assert!((x - y).abs() <= 1e-5, "{model} n={n} row {i}: {x} vs {y}");
                                }
                            }
                            (a, b) => assert_eq!(a, b, "{model} n={n} row {i}"),
                        }
                    }
                }
            }
        }
    }

    /// Tree ensembles walk a small batch row by row and a large one tree by tree (16 rows in
    /// lock step); both add a row's votes in tree order, so every row of a large batch must
    /// equal, bit for bit, the same row run alone (which the golden files check against
    /// onnxruntime), missing values included.
    #[test]
    fn tree_ensembles_give_the_same_bits_at_every_batch_size() {
        for model in [
            "lightgbm_regressor",
            "lightgbm_classifier",
            "lightgbm_multiclass",
            "xgboost_regressor",
            "xgboost_classifier",
            "sklearn_gbdt_regressor",
            "sklearn_rf_regressor",
            "sklearn_rf_classifier",
        ] {
            let e = load(model);
            for n in [15, 16, 17, 40, 300] {
                let mut x = rows(n, 12, 7 + n as u32);
                x.iter_mut().step_by(11).for_each(|v| *v = f32::NAN);
                let batch = e.run(vec![tensor_f32(&[n, 12], x.clone())]).expect("batch");
                for i in 0..n {
                    let single = e.run(vec![tensor_f32(&[1, 12], x[i * 12..(i + 1) * 12].to_vec())]).expect("row");
                    for (b, s) in batch.iter().zip(&single) {
                        let part = b.split_rows(&[i, 1, n - i - 1]).expect("split")[1].clone();
                        match (&part.data, &s.data) {
                            (TensorData::F32(a), TensorData::F32(b)) => {
                                let (a, b): (Vec<u32>, Vec<u32>) =
                                    (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
                                assert_eq!(a, b, "{model} n={n} row {i}");
                            }
                            (a, b) => assert_eq!(a, b, "{model} n={n} row {i}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn several_threads_share_one_engine() {
        let engines: Vec<(Arc<TractEngine>, usize)> =
            vec![(Arc::new(load("mlp")), 16), (Arc::new(load("lightgbm_classifier")), 12)];
        // Reference answers, computed on this thread.
        let cases: Vec<(usize, usize, Tensor, Vec<Tensor>)> = engines
            .iter()
            .enumerate()
            .flat_map(|(m, (e, width))| {
                [1usize, 5, 33].into_iter().map(move |n| {
                    let x = tensor_f32(&[n, *width], rows(n, *width, (m * 100 + n) as u32));
                    let want = e.run(vec![x.clone()]).expect("reference");
                    (m, n, x, want)
                })
            })
            .collect();
        let cases = Arc::new(cases);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let engines: Vec<Arc<TractEngine>> = engines.iter().map(|(e, _)| e.clone()).collect();
                let cases = cases.clone();
                std::thread::spawn(move || {
                    for round in 0..25 {
                        let (m, n, x, want) = &cases[(t + round) % cases.len()];
                        let got = engines[*m].run(vec![x.clone()]).expect("run");
                        assert_eq!(&got, want, "thread {t} round {round} model {m} batch {n}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread finished without panicking");
        }
    }

    #[test]
    fn f32_helper_reads_outputs() {
        let out = load("fixed_shape").run(vec![tensor_f32(&[4], vec![0.5, -1.0, 2.0, 0.0])]).expect("runs");
        assert_eq!(out[0].shape, vec![2]);
        assert_eq!(f32s(&out[0].data).len(), 2);
    }
}
