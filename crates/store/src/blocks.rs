//! The request log's storage: records kept in compressed blocks, one row of `request_blocks` per
//! block of up to [`BLOCK_RECORDS`] records, instead of one indexed row per request.
//!
//! Why (BENCHMARKS.md, "Store"): a row per request with its indexes cost ~10 µs of CPU per record
//! (B-tree inserts into the table and three indexes, WAL writes of every page they dirtied,
//! sqlx binding each value), too much beside a V2 request that costs ~40 µs in all. A block is
//! one row: its records are encoded with postcard (serde, compact varints) and compressed with
//! zstd, and the block carries what queries need to skip it without decompressing:
//!
//! - `min_time_ms`, `max_time_ms`: the time range of its records (indexed: queries walk blocks
//!   newest first and stop once no block can hold a newer match than the page already has);
//! - `records`, `errors`: how many records, how many with status ≥ 400;
//! - `key_hashes`: the sorted, distinct 32-bit FNV-1a hashes of every record's request id, user,
//!   model, version, pipeline and status ([`Key`]). A block whose hashes lack the filter's key
//!   holds no match; one that has it is decoded and filtered exactly (a hash shared by chance
//!   costs a decode, never a wrong answer).
//!
//! Within a block records are in time order (stable: ties keep their submission order); a record's
//! id is `block id << ORDINAL_BITS | position`, so (time, id) orders records the way the old row
//! ids did and keyset cursors keep their form.
//!
//! This module owns the format (encode, decode, keys), the table's reads and writes, rewriting a
//! block without some of its records (retention), and the one-time conversion of request rows of
//! schemas before 7 into blocks.

use std::borrow::Cow;

use crate::db::{Store, with_pool};
use crate::error::StoreError;
use crate::records::RequestRecord;
use crate::writer::{MAX_SHORT_CHARS, MAX_TEXT_BYTES, capped_str, short};

/// Records per block at most.
pub(crate) const BLOCK_RECORDS: usize = 1024;
/// Estimated uncompressed bytes per block at most (a larger record forms a block of its own).
pub(crate) const BLOCK_RAW_BYTES: usize = 1 << 20;
/// A record id is its block's id shifted by this many bits, plus its position in the block.
pub(crate) const ORDINAL_BITS: u32 = 16;
const _: () = assert!(BLOCK_RECORDS < 1 << ORDINAL_BITS);
/// First byte of a payload: postcard-encoded `Vec<RequestRecord>`, zstd-compressed.
const FORMAT_POSTCARD_ZSTD: u8 = 1;
/// zstd level: 1 is the fastest of the regular levels; the payload is mostly JSON text and
/// repeated names, which it compresses 4-8 times (measured in the store bench).
const ZSTD_LEVEL: i32 = 1;

/// One encoded block, ready to insert.
#[derive(Clone, Debug)]
pub(crate) struct EncodedBlock {
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub records: i64,
    pub errors: i64,
    pub key_hashes: Vec<u8>,
    pub payload: Vec<u8>,
}

/// What a block's key hashes cover.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Key<'a> {
    RequestId(&'a str),
    User(&'a str),
    Model(&'a str),
    Version(&'a str),
    Pipeline(&'a str),
    Status(u16),
}

impl Key<'_> {
    /// The 32-bit hash stored for this key: FNV-1a over a tag byte and the value as stored (a
    /// status as its two little-endian bytes).
    pub(crate) fn hash(self) -> u32 {
        match self {
            Key::RequestId(v) => fnv1a(b'r', short(v).as_bytes()),
            Key::User(v) => fnv1a(b'u', short(v).as_bytes()),
            Key::Model(v) => fnv1a(b'm', short(v).as_bytes()),
            Key::Version(v) => fnv1a(b'v', short(v).as_bytes()),
            Key::Pipeline(v) => fnv1a(b'p', short(v).as_bytes()),
            Key::Status(code) => fnv1a(b's', &code.to_le_bytes()),
        }
    }
}

fn fnv1a(tag: u8, bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in std::iter::once(&tag).chain(bytes) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Whether a block's `key_hashes` (sorted little-endian u32s) hold `key`'s hash.
pub(crate) fn has_key(key_hashes: &[u8], key: Key<'_>) -> bool {
    let want = key.hash();
    let n = key_hashes.len() / 4;
    let at = |i: usize| {
        u32::from_le_bytes([key_hashes[4 * i], key_hashes[4 * i + 1], key_hashes[4 * i + 2], key_hashes[4 * i + 3]])
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match at(mid).cmp(&want) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// A record's id from its block and position.
pub(crate) fn record_id(block: i64, position: usize) -> i64 {
    (block << ORDINAL_BITS) | position as i64
}

/// The record as stored: indexed-style values cut to [`MAX_SHORT_CHARS`] characters, free text
/// over [`MAX_TEXT_BYTES`] replaced by its digest, a non-finite latency stored as -1 (what the
/// row schema did, so both backends and both schemas answer alike). Borrowed when nothing changes.
fn stored(r: &RequestRecord) -> Cow<'_, RequestRecord> {
    let long = |s: &Option<String>| s.as_ref().is_some_and(|v| v.len() > MAX_SHORT_CHARS);
    let big = |s: &Option<String>| s.as_ref().is_some_and(|v| v.len() > MAX_TEXT_BYTES);
    let needs = r.request_id.len() > MAX_SHORT_CHARS
        || [&r.replica, &r.model, &r.version, &r.arm, &r.pipeline, &r.user, &r.raw_user].into_iter().any(long)
        || [&r.input, &r.output, &r.error].into_iter().any(big)
        || !r.latency_ms.is_finite();
    if !needs {
        return Cow::Borrowed(r);
    }
    let cut = |s: &Option<String>| s.as_deref().map(|v| short(v).to_string());
    let cap = |s: &Option<String>| s.as_deref().map(capped_str);
    Cow::Owned(RequestRecord {
        request_id: short(&r.request_id).to_string(),
        time_ms: r.time_ms,
        replica: cut(&r.replica),
        model: cut(&r.model),
        version: cut(&r.version),
        arm: cut(&r.arm),
        pipeline: cut(&r.pipeline),
        user: cut(&r.user),
        raw_user: cut(&r.raw_user),
        input: cap(&r.input),
        output: cap(&r.output),
        stages: r.stages.clone(),
        latency_ms: if r.latency_ms.is_finite() { r.latency_ms } else { -1.0 },
        status: r.status,
        error: cap(&r.error),
    })
}

/// Estimated stored bytes of a record (for cutting blocks and statements).
pub(crate) fn record_bytes(r: &RequestRecord) -> usize {
    let o = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    64 + r.request_id.len()
        + o(&r.replica)
        + o(&r.model)
        + o(&r.version)
        + o(&r.arm)
        + o(&r.pipeline)
        + o(&r.user)
        + o(&r.raw_user)
        + o(&r.input).min(MAX_TEXT_BYTES + 100)
        + o(&r.output).min(MAX_TEXT_BYTES + 100)
        + o(&r.error).min(MAX_TEXT_BYTES + 100)
        + r.stages.iter().map(|(s, _)| s.len() + 9).sum::<usize>()
}

/// Encodes `records` into blocks: sorted by time (stably), cut at [`BLOCK_RECORDS`] records or
/// [`BLOCK_RAW_BYTES`] estimated bytes. CPU work (~1 µs per record): callers off the async
/// runtime run it on a blocking thread.
pub(crate) fn encode_blocks(records: &[&RequestRecord]) -> Result<Vec<EncodedBlock>, String> {
    let mut sorted: Vec<&RequestRecord> = records.to_vec();
    sorted.sort_by_key(|r| r.time_ms);
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < sorted.len() && end - start < BLOCK_RECORDS {
            let b = record_bytes(sorted[end]);
            if end > start && bytes + b > BLOCK_RAW_BYTES {
                break;
            }
            bytes += b;
            end += 1;
        }
        blocks.push(encode_block(&sorted[start..end], bytes)?);
        start = end;
    }
    Ok(blocks)
}

/// Encodes records already in the order they are to keep (at most [`BLOCK_RECORDS`]).
fn encode_block(records: &[&RequestRecord], raw_estimate: usize) -> Result<EncodedBlock, String> {
    let stored: Vec<Cow<'_, RequestRecord>> = records.iter().map(|r| stored(r)).collect();
    let mut keys: Vec<u32> = Vec::with_capacity(stored.len() * 3);
    let (mut min_time_ms, mut max_time_ms, mut errors) = (i64::MAX, i64::MIN, 0);
    for r in &stored {
        min_time_ms = min_time_ms.min(r.time_ms);
        max_time_ms = max_time_ms.max(r.time_ms);
        if r.status >= 400 {
            errors += 1;
        }
        keys.push(Key::RequestId(&r.request_id).hash());
        keys.push(Key::Status(r.status).hash());
        if let Some(v) = &r.user {
            keys.push(Key::User(v).hash());
        }
        if let Some(v) = &r.model {
            keys.push(Key::Model(v).hash());
        }
        if let Some(v) = &r.version {
            keys.push(Key::Version(v).hash());
        }
        if let Some(v) = &r.pipeline {
            keys.push(Key::Pipeline(v).hash());
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let raw = postcard::to_extend(&stored, Vec::with_capacity(raw_estimate))
        .map_err(|e| format!("encoding a block of {} request records: {e}", stored.len()))?;
    let mut payload = Vec::with_capacity(raw.len() / 3 + 16);
    payload.push(FORMAT_POSTCARD_ZSTD);
    let compressed =
        zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| format!("compressing a block of request records: {e}"))?;
    payload.extend_from_slice(&compressed);
    Ok(EncodedBlock {
        min_time_ms,
        max_time_ms,
        records: stored.len() as i64,
        errors,
        key_hashes: keys.iter().flat_map(|k| k.to_le_bytes()).collect(),
        payload,
    })
}

/// The records of a block's payload, in stored order.
pub(crate) fn decode_block(payload: &[u8]) -> Result<Vec<RequestRecord>, String> {
    match payload.split_first() {
        Some((&FORMAT_POSTCARD_ZSTD, compressed)) => {
            let raw = zstd::stream::decode_all(compressed).map_err(|e| format!("decompressing: {e}"))?;
            postcard::from_bytes(&raw).map_err(|e| format!("decoding: {e}"))
        }
        Some((format, _)) => Err(format!("unknown block format {format}")),
        None => Err("empty payload".to_string()),
    }
}

/// What a query needs of a block to decide whether to decode it (its payload is read apart).
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct BlockSummary {
    pub id: i64,
    pub max_time_ms: i64,
    pub records: i64,
    pub errors: i64,
    pub key_hashes: Vec<u8>,
}

pub(crate) const INSERT_BLOCK_SQL: &str = "INSERT INTO request_blocks (min_time_ms, max_time_ms, records, errors, key_hashes, payload) \
     VALUES (?, ?, ?, ?, ?, ?)";

/// Inserts `$blocks` (an iterator of `&EncodedBlock`) on `$conn`, the caller's transaction;
/// the first failed statement's error.
macro_rules! insert_blocks {
    ($conn:expr, $blocks:expr) => {{
        let mut result = Ok(());
        for b in $blocks {
            let r = sqlx::query($crate::blocks::INSERT_BLOCK_SQL)
                .bind(b.min_time_ms)
                .bind(b.max_time_ms)
                .bind(b.records)
                .bind(b.errors)
                .bind(b.key_hashes.as_slice())
                .bind(b.payload.as_slice())
                .execute(&mut *$conn)
                .await;
            if let Err(e) = r {
                result = Err(e);
                break;
            }
        }
        result
    }};
}
pub(crate) use insert_blocks;

impl Store {
    fn corrupt_block(&self, id: i64, reason: String) -> StoreError {
        StoreError::Corrupt {
            target: self.describe(),
            table: "request_blocks",
            reason: format!("block {id}: {reason}"),
        }
    }

    /// Summaries of the blocks that may hold records in `[from, to]` (either end open), newest
    /// `max_time_ms` first, after the keyset position `after` (max_time_ms, id), `n` at most;
    /// only blocks with an error when `errors_only`.
    pub(crate) async fn block_summaries(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        errors_only: bool,
        after: Option<(i64, i64)>,
        n: usize,
    ) -> Result<Vec<BlockSummary>, StoreError> {
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        if let Some(from) = from {
            conditions.push("max_time_ms >= ?");
            args.push(from);
        }
        if let Some(to) = to {
            conditions.push("min_time_ms <= ?");
            args.push(to);
        }
        if errors_only {
            conditions.push("errors > 0");
        }
        if let Some((t, id)) = after {
            conditions.push("(max_time_ms < ? OR (max_time_ms = ? AND id < ?))");
            args.extend([t, t, id]);
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT id, max_time_ms, records, errors, key_hashes FROM request_blocks {filter} \
             ORDER BY max_time_ms DESC, id DESC LIMIT {n}"
        );
        with_pool!(self.pool(), p => {
            let mut q = sqlx::query_as::<_, BlockSummary>(sqlx::AssertSqlSafe(sql));
            for a in &args {
                q = q.bind(*a);
            }
            q.fetch_all(p).await
        })
        .map_err(self.err("reading request log blocks"))
    }

    /// The records of block `id` that `keep` accepts (given each record's id), with their ids,
    /// in stored order; empty when the block is gone. Decoded and filtered on a blocking thread.
    pub(crate) async fn block_records_where(
        &self,
        id: i64,
        keep: impl Fn(i64, &RequestRecord) -> bool + Send + 'static,
    ) -> Result<Vec<(i64, RequestRecord)>, StoreError> {
        let payload: Option<Vec<u8>> = with_pool!(self.pool(), p =>
            sqlx::query_scalar("SELECT payload FROM request_blocks WHERE id = ?").bind(id).fetch_optional(p).await)
        .map_err(self.err("reading a request log block"))?;
        let Some(payload) = payload else { return Ok(Vec::new()) };
        tokio::task::spawn_blocking(move || {
            let records = decode_block(&payload)?;
            Ok(records
                .into_iter()
                .enumerate()
                .map(|(i, r)| (record_id(id, i), r))
                .filter(|(rid, r)| keep(*rid, r))
                .collect())
        })
        .await
        .map_err(|e| self.corrupt_block(id, format!("decoding task failed: {e}")))?
        .map_err(|reason| self.corrupt_block(id, reason))
    }

    /// Keeps only the records of block `id` that `keep` accepts (deletes the block when none
    /// is left). Returns how many records went.
    pub(crate) async fn rewrite_block(
        &self,
        id: i64,
        keep: impl Fn(usize, &RequestRecord) -> bool + Send + 'static,
    ) -> Result<u64, StoreError> {
        let records = self.block_records_where(id, |_, _| true).await?;
        let before = records.len();
        // Encoded only when some record goes.
        let (kept, encoded) = tokio::task::spawn_blocking(move || {
            let kept: Vec<RequestRecord> =
                records.into_iter().enumerate().filter(|(i, (_, r))| keep(*i, r)).map(|(_, (_, r))| r).collect();
            let refs: Vec<&RequestRecord> = kept.iter().collect();
            let changed = kept.len() < before && !refs.is_empty();
            let encoded = if changed { encode_block(&refs, 0).map(Some) } else { Ok(None) };
            (kept.len(), encoded)
        })
        .await
        .map_err(|e| self.corrupt_block(id, format!("re-encoding task failed: {e}")))?;
        let removed = (before - kept) as u64;
        if removed == 0 {
            return Ok(0);
        }
        match encoded.map_err(|reason| self.corrupt_block(id, reason))? {
            None => {
                self.delete_blocks(&[(id, 0)]).await?;
            }
            Some(b) => {
                with_pool!(self.pool(), p => sqlx::query(
                    "UPDATE request_blocks SET min_time_ms = ?, max_time_ms = ?, records = ?, errors = ?, key_hashes = ?, payload = ? WHERE id = ?")
                    .bind(b.min_time_ms).bind(b.max_time_ms).bind(b.records).bind(b.errors)
                    .bind(b.key_hashes.as_slice()).bind(b.payload.as_slice()).bind(id)
                    .execute(p).await.map(|_| ()))
                .map_err(self.err("rewriting a request log block"))?;
            }
        }
        Ok(removed)
    }

    /// Deletes the blocks `ids`; returns their records' count.
    pub(crate) async fn delete_blocks(&self, ids: &[(i64, i64)]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list: Vec<String> = ids.iter().map(|(id, _)| id.to_string()).collect();
        let sql = format!("DELETE FROM request_blocks WHERE id IN ({})", list.join(","));
        with_pool!(self.pool(), p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|_| ()))
            .map_err(self.err("deleting request log blocks"))?;
        Ok(ids.iter().map(|(_, n)| n.max(&0)).sum::<i64>() as u64)
    }

    /// Request log records stored.
    pub(crate) async fn count_request_records(&self) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self.pool(), p =>
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(records), 0) AS SIGNED) FROM request_blocks").fetch_one(p).await)
        .map_err(self.err("counting request log records"))?;
        Ok(n.max(0) as u64)
    }

    /// Moves request rows of schemas before 7 (`request_log`, one row per request) into blocks,
    /// oldest first, [`BLOCK_RECORDS`] rows per transaction (insert the block, delete the rows),
    /// so an interruption loses nothing and the next open carries on. Runs at open; quick when
    /// the old table is empty.
    pub(crate) async fn convert_request_rows(&self) -> Result<u64, StoreError> {
        let total: i64 = with_pool!(self.pool(), p =>
            sqlx::query_scalar("SELECT COUNT(*) FROM request_log").fetch_one(p).await)
        .map_err(self.err("counting request rows of the old schema"))?;
        if total <= 0 {
            return Ok(0);
        }
        tracing::info!(store = %self.describe(), rows = total, "moving request log rows of the old schema into blocks");
        let lock = if self.is_mysql() { " FOR UPDATE" } else { "" };
        let select = format!(
            "SELECT id, request_id, time_ms, replica, model, version, arm, pipeline, user_hash, raw_user, input, \
             output, stages, latency_ms, status, error FROM request_log ORDER BY id LIMIT {BLOCK_RECORDS}{lock}"
        );
        let mut moved = 0u64;
        loop {
            // Read, insert and delete in one transaction that holds the write lock from its first
            // statement (SQLite: a write that matches nothing still takes it; MySQL: the locking
            // read), so two pools opening the same database at once never move a row twice.
            let step = with_pool!(self.pool(), p => crate::db::transaction(p, async |tx| {
                sqlx::query("DELETE FROM request_log WHERE id < 0").execute(&mut **tx).await?;
                let rows: Vec<LegacyRow> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone())).fetch_all(&mut **tx).await?;
                let Some(last) = rows.last().map(|r| r.id) else { return Ok(crate::db::Finish::Commit(Ok(0))) };
                let n = rows.len() as u64;
                let records: Vec<RequestRecord> = rows.into_iter().map(LegacyRow::into_record).collect();
                let refs: Vec<&RequestRecord> = records.iter().collect();
                let blocks = match encode_blocks(&refs) {
                    Ok(b) => b,
                    Err(reason) => return Ok(crate::db::Finish::Rollback(Err(reason))),
                };
                insert_blocks!(&mut **tx, &blocks)?;
                sqlx::query("DELETE FROM request_log WHERE id <= ?").bind(last).execute(&mut **tx).await?;
                Ok(crate::db::Finish::Commit(Ok(n)))
            }).await)
            .map_err(self.err("moving request rows into blocks"))?;
            match step {
                Ok(0) => break,
                Ok(n) => moved += n,
                Err(reason) => {
                    return Err(StoreError::Corrupt { target: self.describe(), table: "request_log", reason });
                }
            }
        }
        tracing::info!(store = %self.describe(), rows = moved, "request log rows moved into blocks");
        Ok(moved)
    }
}

/// A `request_log` row (schemas 1-6).
#[derive(sqlx::FromRow)]
struct LegacyRow {
    id: i64,
    request_id: String,
    time_ms: i64,
    replica: Option<String>,
    model: Option<String>,
    version: Option<String>,
    arm: Option<String>,
    pipeline: Option<String>,
    user_hash: Option<String>,
    raw_user: Option<String>,
    input: Option<String>,
    output: Option<String>,
    stages: String,
    latency_ms: f64,
    status: i32,
    error: Option<String>,
}

impl LegacyRow {
    /// The record (an unreadable `stages` becomes no stages, an out-of-range status 500: the
    /// rest of the record is still worth keeping).
    fn into_record(self) -> RequestRecord {
        let stages: Vec<(String, f64)> = serde_json::from_str(&self.stages).unwrap_or_default();
        RequestRecord {
            request_id: self.request_id,
            time_ms: self.time_ms,
            replica: self.replica,
            model: self.model,
            version: self.version,
            arm: self.arm,
            pipeline: self.pipeline,
            user: self.user_hash,
            raw_user: self.raw_user,
            input: self.input,
            output: self.output,
            stages: stages.into_iter().map(|(n, ms)| (n.into(), ms)).collect(),
            latency_ms: self.latency_ms,
            status: u16::try_from(self.status).unwrap_or(500),
            error: self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize, time_ms: i64) -> RequestRecord {
        let mut r = RequestRecord::new(format!("req-{i}"), time_ms);
        r.model = Some("ranker".into());
        r.version = Some("2".into());
        r.user = if i.is_multiple_of(2) { Some(format!("user-{}", i % 7)) } else { None };
        r.input = Some(format!("{{\"x\":[{i},{}]}}", i * 2));
        r.stages = vec![("queue".into(), 0.25), ("infer".into(), 1.5)];
        r.latency_ms = 1.75;
        r.status = if i.is_multiple_of(5) { 503 } else { 200 };
        r
    }

    #[test]
    fn blocks_round_trip_in_time_order_and_summarise_their_records() {
        let records: Vec<RequestRecord> = (0..2500).map(|i| rec(i, 1000 + ((i * 37) % 400) as i64)).collect();
        let refs: Vec<&RequestRecord> = records.iter().collect();
        let blocks = encode_blocks(&refs).expect("encode");
        assert_eq!(blocks.iter().map(|b| b.records).collect::<Vec<_>>(), vec![1024, 1024, 452]);
        let mut decoded = Vec::new();
        for b in &blocks {
            let rs = decode_block(&b.payload).expect("decode");
            assert_eq!(rs.len() as i64, b.records);
            assert_eq!(rs.iter().map(|r| r.time_ms).min(), Some(b.min_time_ms));
            assert_eq!(rs.iter().map(|r| r.time_ms).max(), Some(b.max_time_ms));
            assert_eq!(rs.iter().filter(|r| r.status >= 400).count() as i64, b.errors);
            for r in &rs {
                assert!(has_key(&b.key_hashes, Key::RequestId(&r.request_id)));
                assert!(has_key(&b.key_hashes, Key::Status(r.status)));
                if let Some(u) = &r.user {
                    assert!(has_key(&b.key_hashes, Key::User(u)));
                }
            }
            assert!(has_key(&b.key_hashes, Key::Model("ranker")));
            assert!(!has_key(&b.key_hashes, Key::Model("mlp")));
            assert!(!has_key(&b.key_hashes, Key::RequestId("req-99999")));
            // A key of one kind does not match another kind with the same value.
            assert!(!has_key(&b.key_hashes, Key::User("ranker")));
            decoded.extend(rs);
        }
        // Sorted by time, ties in submission order.
        let mut want = records.clone();
        want.sort_by_key(|r| r.time_ms);
        assert_eq!(decoded, want);
        // Compressed well below the estimate.
        let stored: usize = blocks.iter().map(|b| b.payload.len()).sum();
        let raw: usize = records.iter().map(record_bytes).sum();
        assert!(stored * 3 < raw, "{stored} bytes stored for {raw} estimated");
    }

    #[test]
    fn big_records_cut_blocks_by_size() {
        let mut records: Vec<RequestRecord> = (0..10).map(|i| rec(i, i as i64)).collect();
        for r in &mut records {
            r.output = Some("z".repeat(400_000));
        }
        let refs: Vec<&RequestRecord> = records.iter().collect();
        let blocks = encode_blocks(&refs).expect("encode");
        assert!(blocks.iter().all(|b| b.records <= 2), "{:?}", blocks.iter().map(|b| b.records).collect::<Vec<_>>());
        assert_eq!(blocks.iter().map(|b| b.records).sum::<i64>(), 10);
    }

    #[test]
    fn corrupt_payloads_are_errors() {
        let err = |payload: &[u8]| decode_block(payload).err().unwrap_or_default();
        assert!(err(&[]).contains("empty"));
        assert!(err(&[9, 1, 2]).contains("format 9"));
        assert!(err(&[FORMAT_POSTCARD_ZSTD, 1, 2, 3]).contains("decompressing"));
    }

    #[test]
    fn record_ids_order_by_block_then_position() {
        assert!(record_id(2, 0) > record_id(1, BLOCK_RECORDS - 1));
        assert_eq!(record_id(3, 5) >> ORDINAL_BITS, 3);
    }
}
