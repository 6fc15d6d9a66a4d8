//! Persistence of the series store: the [`SeriesPersistence`] trait and its append-only file
//! implementation [`FilePersistence`].
//!
//! File format (`series.bin`, little-endian): the 8-byte header `RSSERIE1`, then records:
//! - `0x01` series definition: `u32 id`, `u16 count`, `count ×` (`u16 len`, name bytes,
//!   `u16 len`, value bytes);
//! - `0x02` samples at one timestamp: `i64 unix ms`, `u32 count`, `count ×` (`u32 id`, `u64` f64 bits).
//!
//! A torn last record (crash mid-write) is cut off on load. Compaction rewrites the file from
//! the in-memory contents (so samples past retention go away) into a temporary file that is
//! then renamed over the old one.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::labels::LabelSet;

/// One series with its samples `(unix ms, value)`.
pub type SeriesData = (LabelSet, Vec<(i64, f64)>);

/// Where the series store keeps history across restarts. The SQL store can implement this later.
pub trait SeriesPersistence: Send {
    /// Reads everything persisted so far.
    fn load(&mut self) -> Result<Vec<SeriesData>, StoreError>;
    /// Appends samples `(labels, unix ms, value)`.
    fn append(&mut self, samples: &[(&LabelSet, i64, f64)]) -> Result<(), StoreError>;
    /// Whether the persisted data has grown enough to be worth rewriting.
    fn wants_compaction(&self) -> bool;
    /// Replaces everything persisted with `series`.
    fn compact(&mut self, series: &[SeriesData]) -> Result<(), StoreError>;
}

const HEADER: &[u8; 8] = b"RSSERIE1";
const TAG_SERIES: u8 = 1;
const TAG_SAMPLES: u8 = 2;
/// Compaction happens when the file has grown past twice its compacted size plus this.
const COMPACTION_SLACK_BYTES: u64 = 1 << 20;

/// Append-only binary file in a data directory.
#[derive(Debug)]
pub struct FilePersistence {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    ids: HashMap<LabelSet, u32>,
    next_id: u32,
    size: u64,
    compacted_size: u64,
}

impl FilePersistence {
    /// Uses `<dir>/series.bin`, creating the directory if needed.
    pub fn new(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        Ok(Self {
            path: dir.join("series.bin"),
            writer: None,
            ids: HashMap::new(),
            next_id: 0,
            size: 0,
            compacted_size: 0,
        })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io { path: self.path.clone(), source }
    }

    fn open_append(&mut self) -> Result<(), StoreError> {
        let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| self.io(e))?;
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        let mut w = BufWriter::new(file);
        if len == 0 {
            w.write_all(HEADER).map_err(|e| self.io(e))?;
            self.size = HEADER.len() as u64;
        } else {
            self.size = len;
        }
        self.writer = Some(w);
        Ok(())
    }

    fn encode_series(buf: &mut Vec<u8>, id: u32, labels: &LabelSet) {
        buf.push(TAG_SERIES);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&(labels.len() as u16).to_le_bytes());
        for (k, v) in labels.iter() {
            for s in [k, v] {
                let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
                buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
                buf.extend_from_slice(b);
            }
        }
    }

    fn encode(&mut self, samples: &[(&LabelSet, i64, f64)], buf: &mut Vec<u8>) {
        let mut i = 0;
        while i < samples.len() {
            let ts = samples[i].1;
            let mut j = i;
            while j < samples.len() && samples[j].1 == ts {
                j += 1;
            }
            let mut body = Vec::with_capacity((j - i) * 12);
            for (labels, _, v) in &samples[i..j] {
                let id = match self.ids.get(*labels) {
                    Some(id) => *id,
                    None => {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.ids.insert((*labels).clone(), id);
                        Self::encode_series(buf, id, labels);
                        id
                    }
                };
                body.extend_from_slice(&id.to_le_bytes());
                body.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            buf.push(TAG_SAMPLES);
            buf.extend_from_slice(&ts.to_le_bytes());
            buf.extend_from_slice(&((j - i) as u32).to_le_bytes());
            buf.extend_from_slice(&body);
            i = j;
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

impl SeriesPersistence for FilePersistence {
    fn load(&mut self) -> Result<Vec<SeriesData>, StoreError> {
        self.writer = None;
        self.ids.clear();
        self.next_id = 0;
        let mut data = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(|e| self.io(e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(e)),
        }
        let mut out: Vec<SeriesData> = Vec::new();
        let mut by_id: HashMap<u32, usize> = HashMap::new();
        let mut good = 0usize;
        if !data.is_empty() {
            if data.len() < HEADER.len() || &data[..HEADER.len()] != HEADER {
                return Err(StoreError::BadHeader { path: self.path.clone() });
            }
            let mut r = Reader { data: &data, pos: HEADER.len() };
            good = r.pos;
            loop {
                let parsed = (|| -> Option<()> {
                    match r.u8()? {
                        TAG_SERIES => {
                            let id = r.u32()?;
                            let n = r.u16()?;
                            let mut pairs = Vec::with_capacity(n as usize);
                            for _ in 0..n {
                                pairs.push((r.string()?, r.string()?));
                            }
                            let labels = LabelSet::from_pairs(pairs);
                            by_id.insert(id, out.len());
                            self.ids.insert(labels.clone(), id);
                            self.next_id = self.next_id.max(id + 1);
                            out.push((labels, Vec::new()));
                        }
                        TAG_SAMPLES => {
                            let ts = r.u64()? as i64;
                            let n = r.u32()?;
                            let mut batch = Vec::with_capacity(n as usize);
                            for _ in 0..n {
                                batch.push((r.u32()?, f64::from_bits(r.u64()?)));
                            }
                            for (id, v) in batch {
                                if let Some(&i) = by_id.get(&id) {
                                    out[i].1.push((ts, v));
                                }
                            }
                        }
                        _ => return None,
                    }
                    Some(())
                })();
                if parsed.is_none() {
                    break;
                }
                good = r.pos;
            }
            if good < data.len() {
                tracing::warn!(path = %self.path.display(), dropped = data.len() - good, "cut a torn record off the series file");
                let f = OpenOptions::new().write(true).open(&self.path).map_err(|e| self.io(e))?;
                f.set_len(good as u64).map_err(|e| self.io(e))?;
            }
        }
        self.compacted_size = good as u64;
        self.open_append()?;
        for s in &mut out {
            s.1.sort_by_key(|p| p.0);
        }
        Ok(out)
    }

    fn append(&mut self, samples: &[(&LabelSet, i64, f64)]) -> Result<(), StoreError> {
        if self.writer.is_none() {
            self.open_append()?;
        }
        let mut buf = Vec::new();
        self.encode(samples, &mut buf);
        let path = self.path.clone();
        let w = self.writer.as_mut().ok_or_else(|| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::other("series file is not open"),
        })?;
        w.write_all(&buf).and_then(|_| w.flush()).map_err(|source| StoreError::Io { path, source })?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn wants_compaction(&self) -> bool {
        self.size > self.compacted_size * 2 + COMPACTION_SLACK_BYTES
    }

    fn compact(&mut self, series: &[SeriesData]) -> Result<(), StoreError> {
        self.writer = None;
        self.ids.clear();
        self.next_id = 0;
        let tmp = self.path.with_extension("bin.tmp");
        let mut buf = HEADER.to_vec();
        let mut flat: Vec<(&LabelSet, i64, f64)> =
            series.iter().flat_map(|(l, pts)| pts.iter().map(move |(t, v)| (l, *t, *v))).collect();
        flat.sort_by_key(|s| s.1);
        self.encode(&flat, &mut buf);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| self.io(e))?;
        self.compacted_size = buf.len() as u64;
        self.open_append()
    }
}
