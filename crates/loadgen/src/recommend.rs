//! Request bodies for `POST /v1/recommend` (`--recommend`): read from a JSON-lines file
//! (`--bodies`) or drawn from the synthetic demo shop's simulated shoppers, as the demo's own
//! traffic does (`recserve_shop::Shop::next_action`).

use std::path::Path;

use bytes::Bytes;
use recserve_shop::{SeedableRng, Shop, ShopConfig, ShopRng};
use serde_json::{Value, json};

use crate::LoadgenError;

/// How many distinct bodies are generated; a run cycles through them.
pub(crate) const GENERATED_BODIES: usize = 20_000;

/// Reads `--bodies`: one JSON object per line, blank lines skipped. Each body is sent exactly
/// as written (re-serialised compactly).
pub(crate) fn read_bodies(path: &Path) -> Result<Vec<Bytes>, LoadgenError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| LoadgenError::ReadBodies { path: path.to_owned(), source })?;
    let invalid = |reason: String| LoadgenError::InvalidBodies { path: path.to_owned(), reason };
    let mut bodies = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| invalid(format!("line {}: not JSON: {e}", n + 1)))?;
        if !value.is_object() {
            return Err(invalid(format!("line {}: a request body must be a JSON object", n + 1)));
        }
        let body = serde_json::to_vec(&value).map_err(|e| invalid(format!("line {}: {e}", n + 1)))?;
        bodies.push(Bytes::from(body));
    }
    if bodies.is_empty() {
        return Err(invalid("no request bodies (expected one JSON object per line)".to_owned()));
    }
    Ok(bodies)
}

/// `n` bodies drawn from the default (demo) shop's shoppers with `seed`: the demo's request
/// shape `{"scenario", "user_id", "context": {"device"}, "k", "query"?}`.
pub(crate) fn shop_bodies(seed: u64, n: usize, k: u32) -> Result<Vec<Bytes>, LoadgenError> {
    let shop = Shop::new(ShopConfig::default()).map_err(|e| LoadgenError::Shop(e.to_string()))?;
    let mut rng = ShopRng::seed_from_u64(seed);
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        let action = shop.next_action(&mut rng);
        let mut body = json!({
            "scenario": action.scenario.as_str(),
            "user_id": action.user_id,
            "context": {"device": action.device.as_str()},
            "k": k,
        });
        if let Some(q) = action.scenario.query() {
            body["query"] = json!(q);
        }
        let bytes = serde_json::to_vec(&body).map_err(|e| LoadgenError::Shop(e.to_string()))?;
        bodies.push(Bytes::from(bytes));
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bodies_mix_scenarios_and_are_deterministic() {
        let a = shop_bodies(3, 400, 20).expect("bodies");
        assert_eq!(a, shop_bodies(3, 400, 20).expect("bodies"));
        let parsed: Vec<Value> = a.iter().map(|b| serde_json::from_slice(b).expect("json")).collect();
        let search = parsed.iter().filter(|v| v["scenario"] == "search").count();
        assert!((100..300).contains(&search), "{search} searches of 400");
        assert!(parsed.iter().all(|v| v["k"] == 20 && v["user_id"].is_string()));
        assert!(parsed.iter().filter(|v| v["scenario"] == "search").all(|v| v["query"].is_string()));
    }
}
