//! Feature tables: owns loading a CSV table keyed by one column (the user and item tables of
//! FORMAT.md §2) into a compact read-only form, and the typed item catalog derived from the
//! item table (ids, titles, categories, prices, stock, popularity, title tokens) that the
//! request path reads without parsing strings.
//!
//! Cells are kept as text in one `String` with offsets: a 100k-row table is one allocation
//! plus an offset vector, and a row lookup is one hash probe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::text::tokenize;

/// Errors loading a table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read table {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("table {path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("table {path}: no column '{column}' (columns: {columns})")]
    MissingColumn { path: PathBuf, column: String, columns: String },
    #[error("table {path}, row {row}: duplicate key '{key}'")]
    DuplicateKey { path: PathBuf, row: usize, key: String },
    #[error("table {path}, row {row}: column '{column}' value '{value}' is not {expected}")]
    BadValue { path: PathBuf, row: usize, column: String, value: String, expected: &'static str },
}

/// A CSV table with a unique key column, held as text.
#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    columns: Vec<String>,
    column_index: HashMap<String, usize>,
    key_column: usize,
    data: String,
    /// `rows * columns + 1` offsets into `data`.
    offsets: Vec<usize>,
    keys: HashMap<Box<str>, u32>,
}

impl Table {
    /// Reads `path` (RFC 4180 CSV with a header row) keyed by `key`.
    pub fn load(path: &Path, key: &str) -> Result<Table, TableError> {
        let bytes = std::fs::read(path).map_err(|source| TableError::Io { path: path.to_path_buf(), source })?;
        Self::parse(path, &bytes, key)
    }

    /// Parses CSV bytes; `path` only labels errors.
    pub fn parse(path: &Path, bytes: &[u8], key: &str) -> Result<Table, TableError> {
        let csv_err = |e: csv::Error| TableError::Csv { path: path.to_path_buf(), message: e.to_string() };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
        let columns: Vec<String> = reader.headers().map_err(csv_err)?.iter().map(|h| h.trim().to_string()).collect();
        let column_index: HashMap<String, usize> = columns.iter().cloned().zip(0..).collect();
        let key_column = *column_index.get(key).ok_or_else(|| TableError::MissingColumn {
            path: path.to_path_buf(),
            column: key.to_string(),
            columns: columns.join(", "),
        })?;
        let mut data = String::with_capacity(bytes.len());
        let mut offsets = vec![0];
        let mut keys = HashMap::new();
        let mut record = csv::StringRecord::new();
        let mut row = 0usize;
        while reader.read_record(&mut record).map_err(csv_err)? {
            for cell in record.iter() {
                data.push_str(cell);
                offsets.push(data.len());
            }
            let k = &record[key_column];
            if keys.insert(Box::from(k), row as u32).is_some() {
                return Err(TableError::DuplicateKey { path: path.to_path_buf(), row: row + 1, key: k.to_string() });
            }
            row += 1;
        }
        Ok(Table { path: path.to_path_buf(), columns, column_index, key_column, data, offsets, keys })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.column_index.get(name).copied()
    }

    /// The column `name`, or an error naming the table's columns.
    pub fn require_column(&self, name: &str) -> Result<usize, TableError> {
        self.column(name).ok_or_else(|| TableError::MissingColumn {
            path: self.path.clone(),
            column: name.to_string(),
            columns: self.columns.join(", "),
        })
    }

    /// The row of key `key`.
    pub fn row(&self, key: &str) -> Option<usize> {
        self.keys.get(key).map(|r| *r as usize)
    }

    /// The text of one cell.
    pub fn cell(&self, row: usize, column: usize) -> &str {
        let i = row * self.columns.len() + column;
        &self.data[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn key(&self, row: usize) -> &str {
        self.cell(row, self.key_column)
    }

    fn parse_column<T: std::str::FromStr>(
        &self,
        name: &str,
        expected: &'static str,
        ok: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, TableError> {
        let c = self.require_column(name)?;
        (0..self.len())
            .map(|r| {
                let v = self.cell(r, c);
                v.trim().parse::<T>().ok().filter(&ok).ok_or_else(|| TableError::BadValue {
                    path: self.path.clone(),
                    row: r + 1,
                    column: name.to_string(),
                    value: v.to_string(),
                    expected,
                })
            })
            .collect()
    }
}

/// Interned strings: one id per distinct value.
#[derive(Debug, Default)]
pub struct Dictionary {
    pub names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Dictionary {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// The item table in typed columns (one entry per row of the item table, same order).
#[derive(Debug)]
pub struct ItemCatalog {
    pub table: Table,
    pub title_col: usize,
    pub brand_col: Option<usize>,
    pub price: Vec<f64>,
    pub stock: Vec<i64>,
    pub popularity: Vec<f64>,
    pub category: Vec<u32>,
    pub subcategory: Vec<u32>,
    pub brand: Vec<u32>,
    /// Category and subcategory names share one dictionary, so a filter name resolves once.
    pub categories: Dictionary,
    pub brands: Dictionary,
    /// Rows by popularity, highest first (ties by row).
    pub by_popularity: Vec<u32>,
    /// Rows of each category id (category or subcategory), ascending.
    pub rows_of_category: Vec<Vec<u32>>,
    /// Distinct title tokens per row (FNV-1a hashes, sorted), for `query.overlap`.
    title_tokens: Vec<u64>,
    title_token_offsets: Vec<usize>,
}

impl ItemCatalog {
    /// Builds the catalog from the item table. Required columns: `title`, `category`, `price`
    /// (finite, ≥ 0), `stock` (integer); optional: `subcategory`, `brand`, and the popularity
    /// column (`popularity_column`; missing → every item 0).
    pub fn new(table: Table, popularity_column: &str) -> Result<ItemCatalog, TableError> {
        let title_col = table.require_column("title")?;
        let category_col = table.require_column("category")?;
        let subcategory_col = table.column("subcategory");
        let brand_col = table.column("brand");
        let price =
            table.parse_column::<f64>("price", "a price (a finite number ≥ 0)", |x| x.is_finite() && *x >= 0.0)?;
        let stock = table.parse_column::<i64>("stock", "an integer", |_| true)?;
        let popularity = match table.column(popularity_column) {
            Some(_) => table.parse_column::<f64>(popularity_column, "a finite number", |x| x.is_finite())?,
            None => vec![0.0; table.len()],
        };
        let mut categories = Dictionary::default();
        let mut brands = Dictionary::default();
        let n = table.len();
        let mut category = Vec::with_capacity(n);
        let mut subcategory = Vec::with_capacity(n);
        let mut brand = Vec::with_capacity(n);
        let mut title_tokens = Vec::new();
        let mut title_token_offsets = vec![0];
        for r in 0..n {
            category.push(categories.intern(table.cell(r, category_col)));
            subcategory.push(match subcategory_col {
                Some(c) => categories.intern(table.cell(r, c)),
                None => u32::MAX,
            });
            brand.push(brands.intern(brand_col.map_or("", |c| table.cell(r, c))));
            let mut toks: Vec<u64> =
                tokenize(table.cell(r, title_col)).map(|t| crate::features::fnv1a(t.as_bytes())).collect();
            toks.sort_unstable();
            toks.dedup();
            title_tokens.extend_from_slice(&toks);
            title_token_offsets.push(title_tokens.len());
        }
        let mut rows_of_category = vec![Vec::new(); categories.names.len()];
        for r in 0..n {
            rows_of_category[category[r] as usize].push(r as u32);
            if subcategory[r] != u32::MAX && subcategory[r] != category[r] {
                rows_of_category[subcategory[r] as usize].push(r as u32);
            }
        }
        let mut by_popularity: Vec<u32> = (0..n as u32).collect();
        by_popularity.sort_by(|a, b| popularity[*b as usize].total_cmp(&popularity[*a as usize]).then(a.cmp(b)));
        Ok(ItemCatalog {
            table,
            title_col,
            brand_col,
            price,
            stock,
            popularity,
            category,
            subcategory,
            brand,
            categories,
            brands,
            by_popularity,
            rows_of_category,
            title_tokens,
            title_token_offsets,
        })
    }

    pub fn len(&self) -> usize {
        self.price.len()
    }

    pub fn is_empty(&self) -> bool {
        self.price.is_empty()
    }

    pub fn id(&self, row: usize) -> &str {
        self.table.key(row)
    }

    pub fn title(&self, row: usize) -> &str {
        self.table.cell(row, self.title_col)
    }

    pub fn brand_name(&self, row: usize) -> &str {
        self.brands.name(self.brand[row])
    }

    pub fn category_name(&self, row: usize) -> &str {
        self.categories.name(self.category[row])
    }

    pub fn subcategory_name(&self, row: usize) -> &str {
        match self.subcategory[row] {
            u32::MAX => "",
            id => self.categories.name(id),
        }
    }

    /// The sorted distinct title token hashes of `row`.
    pub fn title_tokens(&self, row: usize) -> &[u64] {
        &self.title_tokens[self.title_token_offsets[row]..self.title_token_offsets[row + 1]]
    }
}

/// Reads a raw little-endian f32 file holding `rows` rows of `dim` values.
pub fn load_embeddings(path: &Path, rows: usize, dim: usize) -> Result<Vec<f32>, TableError> {
    let bytes = std::fs::read(path).map_err(|source| TableError::Io { path: path.to_path_buf(), source })?;
    let expected = rows * dim * 4;
    if bytes.len() != expected {
        return Err(TableError::Csv {
            path: path.to_path_buf(),
            message: format!(
                "holds {} bytes, expected {expected} ({rows} item rows × {dim} f32 values × 4 bytes)",
                bytes.len()
            ),
        });
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
