//! Training logs and the files of FORMAT.md section 1: `items.csv`, `users.csv`,
//! `interactions.csv` and `meta.json`.
//!
//! The logs come from a logging policy (what a simple production recommender would have shown):
//! each slot of a page is filled from popularity, from the shopper's recently clicked
//! subcategories, from items matching the search text, or by random exploration; the page is
//! ordered by a noisy policy score. The ground truth ([`crate::Shop::respond`]'s model) decides
//! what the shopper did with each impression. Sessions of one to six requests run on a synthetic
//! clock that starts at 2026-01-01T00:00:00Z and spans 30 days. Output is a pure function of the
//! shop's config and the number of sessions.

use crate::sample::{self, Cumulative};
use crate::truth::{self, Outcome};
use crate::{Shop, ShopError};
use rand::{Rng, RngExt};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Version of the generator (taxonomy, catalog, shoppers, truth, logging policy) in `meta.json`.
pub const GENERATOR_VERSION: u32 = 1;
/// Default number of sessions of `recserve shop export`: about 0.8M impressions for the default
/// shop.
pub const DEFAULT_SESSIONS: usize = 20_000;
/// Largest number of sessions the `S` + 8 digits id format allows.
pub const MAX_SESSIONS: usize = 100_000_000;
/// 2026-01-01T00:00:00Z.
pub const CLOCK_START: i64 = 1_767_225_600;
const CLOCK_SPAN_SECS: i64 = 30 * 86_400;
const PAGE_MIN: usize = 10;
const PAGE_MAX: usize = 20;
const RECENT_LEN: usize = 5;

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    pub out: PathBuf,
    pub sessions: usize,
}

/// Reported while the interaction log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportProgress {
    pub sessions_done: usize,
    pub sessions_total: usize,
    pub impressions: u64,
}

/// Counts of an export, as `meta.json` holds them plus a few more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub out: PathBuf,
    pub items: usize,
    pub users: usize,
    pub sessions: usize,
    pub requests: u64,
    pub impressions: u64,
    pub clicks: u64,
    pub add_to_carts: u64,
    pub purchases: u64,
}

impl ExportSummary {
    /// Clicks per impression.
    pub fn ctr(&self) -> f64 {
        ratio(self.clicks, self.impressions)
    }

    /// Purchases per impression.
    pub fn purchase_rate(&self) -> f64 {
        ratio(self.purchases, self.impressions)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One logged page of results.
#[derive(Debug, Clone)]
pub struct LoggedRequest<'a> {
    pub request_id: u64,
    pub session_id: u64,
    pub user: usize,
    pub ts: i64,
    /// `home_feed` or `search`.
    pub scenario: &'static str,
    /// The search text; empty for a home feed.
    pub query: &'a str,
    /// Indices of the shown items, in position order.
    pub items: &'a [u32],
    /// (clicked, added_to_cart, purchased) per shown item.
    pub outcomes: &'a [(bool, bool, bool)],
}

#[derive(Serialize)]
struct Meta {
    seed: u64,
    items: usize,
    users: usize,
    sessions: usize,
    generator_version: u32,
    impressions: u64,
    clicks: u64,
    purchases: u64,
}

impl Shop {
    /// Writes the four files of FORMAT.md section 1 into `config.out` (created if absent; the four
    /// files are replaced). `progress` is called every 1000 sessions and at the end.
    pub fn export(
        &self,
        config: &ExportConfig,
        progress: &mut dyn FnMut(&ExportProgress),
    ) -> Result<ExportSummary, ShopError> {
        if config.sessions == 0 || config.sessions > MAX_SESSIONS {
            return Err(ShopError::InvalidConfig {
                field: "sessions",
                expected: format!("1 to {MAX_SESSIONS}"),
                got: config.sessions.to_string(),
            });
        }
        let out = &config.out;
        std::fs::create_dir_all(out).map_err(|source| ShopError::Io { path: out.clone(), source })?;
        write_atomically(&out.join("items.csv"), |w| self.write_items(w))?;
        write_atomically(&out.join("users.csv"), |w| self.write_users(w))?;
        let mut summary = ExportSummary {
            out: out.clone(),
            items: self.items().len(),
            users: self.users().len(),
            sessions: config.sessions,
            requests: 0,
            impressions: 0,
            clicks: 0,
            add_to_carts: 0,
            purchases: 0,
        };
        write_atomically(&out.join("interactions.csv"), |w| {
            let mut csv = csv::Writer::from_writer(w);
            csv.write_record([
                "request_id",
                "session_id",
                "user_id",
                "ts",
                "scenario",
                "query",
                "item_id",
                "position",
                "clicked",
                "added_to_cart",
                "purchased",
            ])?;
            let mut row: [String; 11] = Default::default();
            self.simulate_logs(config.sessions, progress, |req| {
                summary.requests += 1;
                row[0] = format!("R{:09}", req.request_id);
                row[1] = format!("S{:08}", req.session_id);
                row[2].clone_from(&self.users()[req.user].id);
                row[3] = req.ts.to_string();
                row[4] = req.scenario.to_string();
                row[5] = req.query.to_string();
                for (pos, (item, (c, a, p))) in req.items.iter().zip(req.outcomes).enumerate() {
                    summary.impressions += 1;
                    summary.clicks += u64::from(*c);
                    summary.add_to_carts += u64::from(*a);
                    summary.purchases += u64::from(*p);
                    row[6].clone_from(&self.items()[*item as usize].id);
                    row[7] = pos.to_string();
                    row[8] = flag(*c);
                    row[9] = flag(*a);
                    row[10] = flag(*p);
                    csv.write_record(&row)?;
                }
                Ok::<(), csv::Error>(())
            })?;
            csv.flush()?;
            Ok(())
        })?;
        let meta = Meta {
            seed: self.config().seed,
            items: summary.items,
            users: summary.users,
            sessions: summary.sessions,
            generator_version: GENERATOR_VERSION,
            impressions: summary.impressions,
            clicks: summary.clicks,
            purchases: summary.purchases,
        };
        let meta_path = out.join("meta.json");
        let mut text =
            serde_json::to_string(&meta).map_err(|source| ShopError::Json { path: meta_path.clone(), source })?;
        text.push('\n');
        write_atomically(&meta_path, |w| Ok(w.write_all(text.as_bytes())?))?;
        Ok(summary)
    }

    fn write_items(&self, w: &mut BufWriter<File>) -> Result<(), csv::Error> {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "item_id",
            "title",
            "category",
            "subcategory",
            "category_path",
            "brand",
            "price",
            "stock",
            "popularity",
        ])?;
        for it in self.items() {
            csv.write_record([
                it.id.as_str(),
                &it.title,
                it.category,
                it.subcategory,
                &it.category_path(),
                it.brand,
                &format!("{:.2}", it.price),
                &it.stock.to_string(),
                &format!("{:.1}", it.popularity),
            ])?;
        }
        csv.flush()?;
        Ok(())
    }

    fn write_users(&self, w: &mut BufWriter<File>) -> Result<(), csv::Error> {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["user_id", "segment", "age_band", "device", "tenure_days"])?;
        for u in self.users() {
            csv.write_record([
                u.id.as_str(),
                u.segment.as_str(),
                u.age_band.as_str(),
                u.device.as_str(),
                &u.tenure_days.to_string(),
            ])?;
        }
        csv.flush()?;
        Ok(())
    }

    /// Runs the logging policy for `sessions` sessions and hands every logged page to `sink`, in
    /// order. The export writes these pages; tests and offline evaluations can read them directly.
    pub fn simulate_logs<E>(
        &self,
        sessions: usize,
        progress: &mut dyn FnMut(&ExportProgress),
        mut sink: impl FnMut(&LoggedRequest<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rng = sample::stream(self.config().seed, 10);
        let mut policy = LoggingPolicy::new(self);
        let mut request_id: u64 = 0;
        let mut impressions: u64 = 0;
        let spacing = (CLOCK_SPAN_SECS / sessions.max(1) as i64).max(1);
        let mut items = Vec::with_capacity(PAGE_MAX);
        let mut outcomes = Vec::with_capacity(PAGE_MAX);
        for s in 0..sessions {
            let user = self.user_activity.draw(&mut rng).unwrap_or(0);
            let shopper = &self.shoppers[user];
            let n_requests =
                sample::pick(&mut rng, &[(1, 0.30), (2, 0.25), (3, 0.18), (4, 0.12), (5, 0.08), (6, 0.07)]);
            let mut ts = CLOCK_START + s as i64 * spacing + rng.random_range(0..spacing);
            let mut session_recent: Option<u16> = None;
            for _ in 0..n_requests {
                let search = rng.random_bool(crate::simulate::SEARCH_SHARE);
                let query = if search {
                    let recent = session_recent.or_else(|| policy.recent(user).last().copied());
                    let subcat = self.search_intent(shopper, recent, &mut rng);
                    Some(self.query_for(shopper, subcat, &mut rng))
                } else {
                    None
                };
                items.clear();
                policy.fill_page(user, query.as_deref(), &mut items, &mut rng);
                let tokens = truth::query_tokens(query.as_deref());
                outcomes.clear();
                for (pos, item) in items.iter().enumerate() {
                    let p = self.probabilities(shopper, *item as usize, pos, tokens.as_deref());
                    let Outcome { clicked, added_to_cart, purchased } = truth::sample_outcome(&p, &mut rng);
                    if clicked {
                        let subcat = self.truth(*item as usize).subcat;
                        session_recent = Some(subcat);
                        policy.remember(user, subcat);
                    }
                    outcomes.push((clicked, added_to_cart, purchased));
                }
                impressions += items.len() as u64;
                sink(&LoggedRequest {
                    request_id,
                    session_id: s as u64,
                    user,
                    ts,
                    scenario: if search { "search" } else { "home_feed" },
                    query: query.as_deref().unwrap_or(""),
                    items: &items,
                    outcomes: &outcomes,
                })?;
                request_id += 1;
                ts += rng.random_range(5..120);
            }
            if (s + 1) % 1000 == 0 || s + 1 == sessions {
                progress(&ExportProgress { sessions_done: s + 1, sessions_total: sessions, impressions });
            }
        }
        Ok(())
    }
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// Items matching one search text, with the policy's sampling weights.
struct SearchCandidates {
    items: Vec<u32>,
    overlap: Vec<f64>,
    weighted: Cumulative,
}

/// The policy that chose what the logs show: popularity, recent subcategories, text match and
/// exploration. It knows only observable data (popularity, titles, what the user clicked).
struct LoggingPolicy<'a> {
    shop: &'a Shop,
    recent: HashMap<usize, Vec<u16>>,
    /// Lowercase token → items whose text holds it (ascending).
    index: HashMap<String, Vec<u32>>,
    searches: HashMap<String, Rc<SearchCandidates>>,
}

impl<'a> LoggingPolicy<'a> {
    fn new(shop: &'a Shop) -> Self {
        let mut index: HashMap<String, Vec<u32>> = HashMap::new();
        for i in 0..shop.items().len() {
            for t in &shop.truth(i).tokens {
                index.entry(t.clone()).or_default().push(i as u32);
            }
        }
        Self { shop, recent: HashMap::new(), index, searches: HashMap::new() }
    }

    fn recent(&self, user: usize) -> &[u16] {
        self.recent.get(&user).map_or(&[], Vec::as_slice)
    }

    fn remember(&mut self, user: usize, subcat: u16) {
        let r = self.recent.entry(user).or_default();
        r.retain(|s| *s != subcat);
        r.push(subcat);
        if r.len() > RECENT_LEN {
            r.remove(0);
        }
    }

    fn search(&mut self, query: &str) -> Rc<SearchCandidates> {
        if let Some(c) = self.searches.get(query) {
            return Rc::clone(c);
        }
        let mut tokens = crate::text::tokenize(query);
        tokens.sort();
        tokens.dedup();
        let mut hits: Vec<u32> = tokens.iter().filter_map(|t| self.index.get(t)).flatten().copied().collect();
        hits.sort_unstable();
        let mut items = Vec::new();
        let mut overlap = Vec::new();
        let n = tokens.len().max(1) as f64;
        for run in hits.chunk_by(|a, b| a == b) {
            let share = run.len() as f64 / n;
            if share >= 0.5 {
                items.push(run[0]);
                overlap.push(share);
            }
        }
        let shop = self.shop;
        let weighted = Cumulative::new(
            items.iter().zip(&overlap).map(|(i, o)| (shop.items()[*i as usize].popularity + 1.0) * o * o),
        );
        let c = Rc::new(SearchCandidates { items, overlap, weighted });
        self.searches.insert(query.to_string(), Rc::clone(&c));
        c
    }

    /// Fills `page` with 10 to 20 distinct items, best policy score first.
    fn fill_page<R: Rng + ?Sized>(&mut self, user: usize, query: Option<&str>, page: &mut Vec<u32>, rng: &mut R) {
        let shop = self.shop;
        let n_items = shop.items().len();
        let size = rng.random_range(PAGE_MIN..=PAGE_MAX).min(n_items);
        let candidates = query.map(|q| self.search(q));
        let recent = self.recent(user).to_vec();
        let mut scored: Vec<(f64, u32)> = Vec::with_capacity(size);
        let mut attempts = 0;
        while scored.len() < size && attempts < size * 20 {
            attempts += 1;
            let x: f64 = rng.random();
            let (item, bonus) = match &candidates {
                Some(c) if !c.items.is_empty() && x < 0.85 => {
                    let k = if x < 0.6 { c.weighted.draw(rng) } else { Some(sample::below(rng, c.items.len())) };
                    let k = k.unwrap_or(0);
                    (c.items[k], 2.0 * c.overlap[k])
                }
                None if !recent.is_empty() && x < 0.35 => {
                    let s = recent[sample::below(rng, recent.len())] as usize;
                    match shop.subcat_popularity[s].draw(rng) {
                        Some(k) => (shop.subcat_items[s][k], 0.5),
                        None => continue,
                    }
                }
                // Home feed: popularity up to 0.8, exploration above; a search falls back to
                // popularity up to 0.92 (and when nothing matches the text).
                _ if x < 0.8 || (candidates.is_some() && x < 0.92) => {
                    (shop.item_popularity.draw(rng).unwrap_or(0) as u32, 0.0)
                }
                _ => (sample::below(rng, n_items) as u32, 0.0),
            };
            if scored.iter().any(|(_, i)| *i == item) {
                continue;
            }
            let pop = shop.items()[item as usize].popularity;
            let u: f64 = 1.0 - rng.random::<f64>();
            let gumbel = -(-u.ln()).ln();
            scored.push((0.4 * pop.ln_1p() + bonus + gumbel, item));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        page.extend(scored.iter().map(|(_, i)| *i));
    }
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), csv::Error>,
) -> Result<(), ShopError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let io = |source| ShopError::Io { path: path.to_path_buf(), source };
    let file = File::create(&tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    write(&mut w).map_err(|source| ShopError::Csv { path: path.to_path_buf(), source })?;
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io)
}
