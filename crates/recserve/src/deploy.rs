//! `recserve deploy`: the deployment API of a running server from the command line. Each
//! command sends one request and prints the model's deployment afterwards; a refusal prints the
//! server's explanation and exits with status 1. `--token` (RECSERVE_TOKEN) is sent as the bearer
//! token once the server enforces authentication.

use crate::cli::{DeployArgs, DeployCommand};
use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let base = args.server.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .user_agent(concat!("recserve-deploy/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")?;
    let url = |model: &str, action: &str| format!("{base}/api/v1/deployments/{model}/{action}");
    let (method_post, target, body) = match args.command {
        DeployCommand::Status { model } => {
            let target = match &model {
                Some(m) => format!("{base}/api/v1/deployments/{m}"),
                None => format!("{base}/api/v1/deployments"),
            };
            (false, target, Value::Null)
        }
        DeployCommand::Register { model, file, validation, config, version, latency_requests, reason } => {
            let mut body = json!({"latency_requests": latency_requests, "reason": reason});
            if let Some(path) = file {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                eprintln!("uploading {} ({} bytes) as a new version of '{model}'…", path.display(), bytes.len());
                body["onnx_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                if let Some(v) = validation {
                    let text = std::fs::read_to_string(&v).with_context(|| format!("cannot read {}", v.display()))?;
                    let samples: Value = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON validation samples", v.display()))?;
                    body["validation"] = samples;
                }
                if let Some(c) = config {
                    let text = std::fs::read_to_string(&c).with_context(|| format!("cannot read {}", c.display()))?;
                    body["config"] = json!(text);
                }
            } else if let Some(v) = version {
                body["version"] = json!(v);
            }
            (true, url(&model, "versions"), body)
        }
        DeployCommand::Canary { model, version, percent, reason } => {
            (true, url(&model, "canary"), json!({"version": version, "percent": percent, "reason": reason}))
        }
        DeployCommand::Percent { model, percent, reason } => {
            (true, url(&model, "percent"), json!({"percent": percent, "reason": reason}))
        }
        DeployCommand::Ab { model, arms, reason } => {
            let arms = arms.iter().map(|a| parse_arm(a)).collect::<anyhow::Result<Vec<Value>>>()?;
            (true, url(&model, "ab"), json!({"arms": arms, "reason": reason}))
        }
        DeployCommand::Promote { model, arm, reason } => {
            (true, url(&model, "promote"), json!({"arm": arm, "reason": reason}))
        }
        DeployCommand::Rollback { model, reason } => (true, url(&model, "rollback"), json!({"reason": reason})),
    };
    let mut request = if method_post { client.post(&target).json(&strip_nulls(body)) } else { client.get(&target) };
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| format!("cannot reach the server at {base}"))?;
    let status = response.status();
    let text = response.text().await.context("cannot read the server's answer")?;
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"error": text}));
    if !status.is_success() {
        let message = answer.get("error").and_then(Value::as_str).unwrap_or("(no message)");
        bail!("the server refused ({status}): {message}");
    }
    match answer.get("data") {
        Some(Value::Array(models)) => models.iter().for_each(print_model),
        Some(model) => print_model(model),
        None => println!("{answer}"),
    }
    Ok(())
}

/// `NAME=VERSION:PERCENT` → `{"name", "version", "percent"}`.
fn parse_arm(text: &str) -> anyhow::Result<Value> {
    let err = || anyhow::anyhow!("arm '{text}' is not NAME=VERSION:PERCENT (e.g. control=3:50)");
    let (name, rest) = text.split_once('=').ok_or_else(err)?;
    let (version, percent) = rest.split_once(':').ok_or_else(err)?;
    let version: u64 = version.trim().parse().map_err(|_| err())?;
    let percent: f64 = percent.trim().trim_end_matches('%').parse().map_err(|_| err())?;
    Ok(json!({"name": name.trim(), "version": version, "percent": percent}))
}

fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, x| !x.is_null());
    }
    v
}

fn print_model(m: &Value) {
    let name = m["model"].as_str().unwrap_or("?");
    let description = m["description"].as_str().unwrap_or("no deployment: the highest ready version serves");
    println!("{name}: {description}");
    if let Some(versions) = m["versions"].as_array() {
        for v in versions {
            let reason = v["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
            println!("  version {} {}{reason}", v["version"], v["state"].as_str().unwrap_or("?"));
        }
    }
    if let Some(retired) = m["retired"].as_array().filter(|r| !r.is_empty()) {
        let list: Vec<String> = retired.iter().map(Value::to_string).collect();
        println!("  retired: {}", list.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_parse_and_bad_ones_are_explained() {
        assert_eq!(parse_arm("control=3:50").unwrap(), json!({"name": "control", "version": 3, "percent": 50.0}));
        assert_eq!(parse_arm("b=4:12.5%").unwrap()["percent"], json!(12.5));
        for bad in ["control", "control=3", "c=x:50", "c=3:half"] {
            assert!(parse_arm(bad).unwrap_err().to_string().contains("NAME=VERSION:PERCENT"), "{bad}");
        }
    }
}
