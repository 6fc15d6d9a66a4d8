//! `recserve-loadgen`: a load generator for Open Inference Protocol (KServe V2) servers and
//! recserve's recommendation API, in the manner of Triton's `perf_analyzer`. It backs
//! `recserve bench`.
//!
//! Closed loop (the default): for each concurrency level, N workers each hold one HTTP/1.1
//! keep-alive connection and send `POST /v2/models/{model}[/versions/{v}]/infer` again as soon
//! as the previous answer arrives. Open loop (`--request-rate`): requests leave on a fixed
//! schedule, rate per second, over up to `--max-in-flight` connections, and latency counts from
//! each request's scheduled time (no coordinated omission). The V2 request body is built once:
//! generated from the model's metadata (`GET /v2/models/{model}`) or read from `--input-data`,
//! as JSON or with the binary tensor data extension. With `--recommend` the requests go to
//! `POST /v1/recommend` instead, with bodies from `--bodies` (JSON lines) or drawn from the
//! demo shop's simulated shoppers, cycled. After an unmeasured warm-up, latencies of successful
//! requests go into per-worker HDR histograms that are merged into one [`Report`] per level.
//!
//! ```no_run
//! # async fn demo() -> Result<(), recserve_loadgen::LoadgenError> {
//! let mut args = recserve_loadgen::BenchArgs::new("mlp");
//! args.concurrency = 32;
//! args.duration = 5.0;
//! let reports = recserve_loadgen::run(&args).await?;
//! print!("{}", recserve_loadgen::format_table(&reports));
//! # Ok(()) }
//! ```

mod args;
mod endpoint;
mod error;
mod load;
mod payload;
mod recommend;
mod report;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use args::{BenchArgs, ConcurrencyRange, Step};
pub use error::LoadgenError;
pub use payload::{ModelMetadata, TensorMetadata};
pub use report::{
    ErrorCount, LatencySummary, MAX_ERROR_KINDS, Report, format_table, print_table, rate_table_header, table_header,
    write_json,
};

use endpoint::{Endpoint, Sender, encode_segment, error_message};
use load::{LevelPlan, RatePlan, RequestTemplate};

/// Runs the benchmark `args` describes and returns one report per concurrency level or request
/// rate.
///
/// Fails before sending load if the server cannot be reached, does not know the model, or the
/// request cannot be built; errors of individual requests during the run are counted in the
/// reports instead. Prints progress to stderr unless `args.quiet`; prints no results (see
/// [`run_and_report`]).
#[tracing::instrument(skip(args), fields(url = %args.url, model = %args.model))]
pub async fn run(args: &BenchArgs) -> Result<Vec<Report>, LoadgenError> {
    args.validate()?;
    let endpoint = Endpoint::resolve(&args.url).await?;
    let mut probe = endpoint.open().await?;

    let (label, rows, template) = if args.recommend {
        check_pipelines(&endpoint, &mut probe).await?;
        drop(probe);
        let bodies = match &args.bodies {
            Some(path) => recommend::read_bodies(path)?,
            None => {
                let (seed, k) = (args.seed, args.k);
                tokio::task::spawn_blocking(move || recommend::shop_bodies(seed, recommend::GENERATED_BODIES, k))
                    .await
                    .map_err(|e| LoadgenError::Shop(e.to_string()))??
            }
        };
        let path = endpoint.path("/v1/recommend");
        tracing::debug!(path = %path, bodies = bodies.len(), "recommendation requests built");
        ("/v1/recommend".to_owned(), 1, Arc::new(RequestTemplate::json_bodies(&endpoint, &path, bodies)?))
    } else {
        let model_path = match &args.model_version {
            Some(v) => format!("/v2/models/{}/versions/{}", encode_segment(&args.model), encode_segment(v)),
            None => format!("/v2/models/{}", encode_segment(&args.model)),
        };
        let payload = match &args.input_data {
            Some(path) => payload::load_input_data(path, args.binary, args.rows)?,
            None => {
                let meta = fetch_metadata(&endpoint, &mut probe, &model_path, &args.model).await?;
                let request = payload::generate_request(&meta, args.rows)?;
                payload::from_request(&request, None, args.binary, args.rows)
                    .map_err(|reason| LoadgenError::InvalidMetadata { model: args.model.clone(), reason })?
            }
        };
        drop(probe);

        let infer_path = endpoint.path(&format!("{model_path}/infer"));
        let template = Arc::new(RequestTemplate::new(&endpoint, &infer_path, &payload)?);
        tracing::debug!(
            path = %infer_path,
            body_bytes = payload.body.len(),
            rows = payload.rows,
            binary = args.binary,
            "request built"
        );
        (args.model.clone(), payload.rows, template)
    };

    if args.open_loop() {
        let mut reports = Vec::with_capacity(args.request_rate.len());
        for &rate in &args.request_rate {
            let plan = RatePlan {
                model: label.clone(),
                recommend: args.recommend,
                binary: args.binary,
                rows,
                rate,
                max_in_flight: args.max_in_flight,
                warmup: Duration::from_secs_f64(args.warmup),
                requests: args.requests,
                duration: Duration::from_secs_f64(args.duration),
                timeout: args.timeout(),
                progress: !args.quiet,
            };
            let report = load::run_rate(&endpoint, Arc::clone(&template), &plan).await?;
            tracing::debug!(
                rate,
                throughput_rps = report.throughput_rps,
                p99_ms = report.latency_ms.p99,
                errors = report.errors,
                "rate done"
            );
            reports.push(report);
        }
        return Ok(reports);
    }

    let levels = args.concurrency_levels();
    let mut reports = Vec::with_capacity(levels.len());
    for concurrency in levels {
        let plan = LevelPlan {
            model: label.clone(),
            recommend: args.recommend,
            binary: args.binary,
            rows,
            concurrency,
            warmup: Duration::from_secs_f64(args.warmup),
            requests: args.requests,
            duration: Duration::from_secs_f64(args.duration),
            timeout: args.timeout(),
            progress: !args.quiet,
        };
        let report = load::run_level(&endpoint, Arc::clone(&template), &plan).await?;
        tracing::debug!(
            concurrency,
            throughput_rps = report.throughput_rps,
            p99_ms = report.latency_ms.p99,
            errors = report.errors,
            "level done"
        );
        reports.push(report);
    }
    Ok(reports)
}

/// [`run`], then print the table to stdout (to stderr when the JSON goes to stdout) and write
/// `--json-output` if given. This is all `recserve bench` needs to call.
pub async fn run_and_report(args: &BenchArgs) -> Result<Vec<Report>, LoadgenError> {
    let reports = run(args).await?;
    let json_to_stdout = args.json_output.as_deref() == Some(Path::new("-"));
    let printed = if json_to_stdout {
        print_table(&reports, &mut std::io::stderr().lock())
    } else {
        print_table(&reports, &mut std::io::stdout().lock())
    };
    printed.map_err(|source| LoadgenError::WriteOutput {
        path: if json_to_stdout { "<stderr>" } else { "<stdout>" }.into(),
        source,
    })?;
    if let Some(path) = &args.json_output {
        write_json(&reports, path)?;
    }
    Ok(reports)
}

/// The whole of `recserve bench`: [`run_and_report`] without the reports.
pub async fn main(args: &BenchArgs) -> Result<(), LoadgenError> {
    run_and_report(args).await.map(drop)
}

/// `GET /v1/scenarios`: fails clearly when the server serves no recommendation pipelines.
async fn check_pipelines(endpoint: &Endpoint, sender: &mut Sender) -> Result<(), LoadgenError> {
    let path = endpoint.path("/v1/scenarios");
    let (status, body) = endpoint.get(sender, &path).await?;
    if status == hyper::StatusCode::OK {
        return Ok(());
    }
    Err(LoadgenError::NoPipelines {
        url: endpoint.url.clone(),
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

/// `GET {model_path}`: the model's V2 metadata.
async fn fetch_metadata(
    endpoint: &Endpoint,
    sender: &mut Sender,
    model_path: &str,
    model: &str,
) -> Result<ModelMetadata, LoadgenError> {
    let path = endpoint.path(model_path);
    let (status, body) = endpoint.get(sender, &path).await?;
    if status == hyper::StatusCode::NOT_FOUND {
        return Err(LoadgenError::ModelNotFound {
            url: endpoint.url.clone(),
            model: model.to_owned(),
            status: status.as_u16(),
            message: error_message(status, &body),
        });
    }
    if status != hyper::StatusCode::OK {
        return Err(LoadgenError::Metadata {
            url: endpoint.url.clone(),
            model: model.to_owned(),
            status: status.as_u16(),
            message: error_message(status, &body),
        });
    }
    serde_json::from_slice(&body).map_err(|e| LoadgenError::InvalidMetadata {
        model: model.to_owned(),
        reason: format!("GET {path} did not return V2 model metadata: {e}"),
    })
}
