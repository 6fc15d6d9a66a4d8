//! API tokens: the `auth_tokens` table behind bearer-token authentication.
//!
//! A token's secret (`rs_` + 32 random bytes, base64url) is shown once, when it is created
//! ([`Store::create_token`] returns it in [`NewToken`]), and never stored: the table keeps its
//! SHA-256 ([`hash_secret`], hex), which is what the server looks a presented token up by. Each
//! row also holds an id (public, used to revoke), a name (the audit trail's actor is
//! `token:<name>`; unique among usable tokens), a role (the server checks it is one of its
//! roles; the store only keeps the text), when it was created, when it expires (optional), when
//! it was last used (written lazily by the server, [`Store::touch_tokens`]) and when it was
//! revoked. Rows are never deleted: a revoked token stays listed, refused.
//!
//! Why a table rather than state documents: tokens are read by hash (a unique index), listed,
//! and have `last_used` written every few seconds while in use; as state documents every such
//! write would bump the global state revision that replicas poll for deployments and alert
//! state, and every poll of deployments would read the token documents too. The server keeps
//! its own in-memory copy and re-reads this (small) table periodically instead.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use crate::db::{Store, now_ms, with_pool};
use crate::error::StoreError;

/// What every token secret starts with (so a leaked one is recognisable, e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "rs_";
/// Random bytes in a token secret.
pub const TOKEN_BYTES: usize = 32;
/// Longest token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 64;
/// Longest role text, in characters.
pub const MAX_ROLE_CHARS: usize = 32;

/// One token as listed (never its secret or hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id, e.g. `tok_3f2a…` (what revoking names).
    pub id: String,
    /// Who or what holds it, e.g. `ci-deployer`.
    pub name: String,
    /// `admin`, `operator`, `viewer` or `inference`.
    pub role: String,
    /// When it was created, unix ms.
    pub created_ms: i64,
    /// When it stops working, unix ms (`None`: never).
    pub expires_ms: Option<i64>,
    /// When a request last used it, unix ms (written lazily, a few seconds late).
    pub last_used_ms: Option<i64>,
    /// When it was revoked, unix ms (`None`: not revoked).
    pub revoked_ms: Option<i64>,
}

impl TokenRecord {
    /// Not revoked and not expired at `now_ms`.
    pub fn usable_at(&self, now_ms: i64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| e > now_ms)
    }
}

/// A token with its hash: what the server's in-memory lookup is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    pub record: TokenRecord,
    /// SHA-256 of the secret, lower-case hex.
    pub hash: String,
}

/// A token just created: the only time its secret exists outside the client.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub record: TokenRecord,
    /// The bearer secret (`rs_…`), to hand to its holder once.
    pub secret: String,
}

/// A fresh random token secret: `rs_` + 32 bytes from the OS, base64url without padding.
pub fn generate_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Invalid {
        what: "token secret",
        reason: format!("the operating system gave no randomness: {e}"),
    })?;
    Ok(format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of a presented secret, lower-case hex: the lookup key of the table.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Invalid {
        what: "token id",
        reason: format!("the operating system gave no randomness: {e}"),
    })?;
    Ok(format!("tok_{}", hex::encode(bytes)))
}

/// Token names: 1 to 64 of `A-Z a-z 0-9 . _ - @` (they appear in logs and the audit trail).
pub fn check_token_name(name: &str) -> Result<(), StoreError> {
    let n = name.chars().count();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if n == 0 || n > MAX_TOKEN_NAME_CHARS || !name.chars().all(ok_char) {
        return Err(StoreError::Invalid {
            what: "token name",
            reason: format!(
                "expected 1 to {MAX_TOKEN_NAME_CHARS} characters of letters, digits, '.', '_', '-' or '@', got {name:?}"
            ),
        });
    }
    Ok(())
}

#[derive(FromRow)]
struct TokenRow {
    id: String,
    name: String,
    role: String,
    token_hash: String,
    created_ms: i64,
    expires_ms: Option<i64>,
    last_used_ms: Option<i64>,
    revoked_ms: Option<i64>,
}

impl TokenRow {
    fn into_stored(self) -> StoredToken {
        let record = TokenRecord {
            id: self.id,
            name: self.name,
            role: self.role,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            last_used_ms: self.last_used_ms,
            revoked_ms: self.revoked_ms,
        };
        StoredToken { record, hash: self.token_hash }
    }
}

const SELECT_ALL_TOKENS: &str = "SELECT id, name, role, token_hash, created_ms, expires_ms, last_used_ms, revoked_ms \
     FROM auth_tokens ORDER BY created_ms, id";
const SELECT_ONE_TOKEN: &str = "SELECT id, name, role, token_hash, created_ms, expires_ms, last_used_ms, revoked_ms \
     FROM auth_tokens WHERE id = ?";

impl Store {
    /// Creates a token named `name` with `role`, expiring at `expires_ms` (unix ms) when given.
    /// Refused when a usable token already has that name (names identify actors in the audit
    /// trail) or when the expiry is not in the future. Returns the secret, which is not kept.
    #[tracing::instrument(skip(self))]
    pub async fn create_token(&self, name: &str, role: &str, expires_ms: Option<i64>) -> Result<NewToken, StoreError> {
        check_token_name(name)?;
        let role_chars = role.chars().count();
        if role_chars == 0 || role_chars > MAX_ROLE_CHARS {
            return Err(StoreError::Invalid {
                what: "token role",
                reason: format!("expected 1 to {MAX_ROLE_CHARS} characters, got {role_chars}"),
            });
        }
        let now = now_ms();
        if let Some(e) = expires_ms.filter(|e| *e <= now) {
            return Err(StoreError::Invalid {
                what: "token expiry",
                reason: format!("expected a time in the future, got {e} (now is {now})"),
            });
        }
        let secret = generate_secret()?;
        let record = TokenRecord {
            id: new_id()?,
            name: name.to_string(),
            role: role.to_string(),
            created_ms: now,
            expires_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        let hash = hash_secret(&secret);
        let taken: i64 = with_pool!(self.pool(), p => crate::db::transaction(p, async |tx| {
            let taken: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM auth_tokens WHERE name = ? AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?)",
            )
            .bind(name).bind(now)
            .fetch_one(&mut **tx).await?;
            if taken == 0 {
                sqlx::query(
                    "INSERT INTO auth_tokens (id, name, role, token_hash, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(&record.id).bind(name).bind(role).bind(&hash).bind(now).bind(expires_ms)
                .execute(&mut **tx).await?;
            }
            Ok(crate::db::Finish::Commit(taken))
        }).await)
        .map_err(self.err("creating a token"))?;
        if taken > 0 {
            return Err(StoreError::Invalid {
                what: "token name",
                reason: format!("a usable token named {name:?} exists already; revoke it first or choose another name"),
            });
        }
        Ok(NewToken { record, secret })
    }

    /// Every token (revoked and expired ones too), oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self.token_hashes().await?.into_iter().map(|t| t.record).collect())
    }

    /// Every token with its hash, oldest first (the server's lookup table is built from it).
    pub async fn token_hashes(&self) -> Result<Vec<StoredToken>, StoreError> {
        let rows: Vec<TokenRow> = with_pool!(self.pool(), p => sqlx::query_as(SELECT_ALL_TOKENS).fetch_all(p).await)
            .map_err(self.err("reading the tokens"))?;
        Ok(rows.into_iter().map(TokenRow::into_stored).collect())
    }

    /// Revokes the token `id` (a second revocation keeps the first time). `None`: no such token.
    #[tracing::instrument(skip(self))]
    pub async fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let now = now_ms();
        let row: Option<TokenRow> = with_pool!(self.pool(), p => async {
            sqlx::query("UPDATE auth_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL")
                .bind(now).bind(id)
                .execute(p).await?;
            sqlx::query_as(SELECT_ONE_TOKEN).bind(id).fetch_optional(p).await
        }.await)
        .map_err(self.err("revoking a token"))?;
        Ok(row.map(|r| r.into_stored().record))
    }

    /// Records when tokens were last used: `(id, unix ms)` pairs, one transaction. A time older
    /// than the one stored is ignored.
    pub async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        with_pool!(self.pool(), p => crate::db::transaction(p, async |tx| {
            for (id, at) in used {
                sqlx::query(
                    "UPDATE auth_tokens SET last_used_ms = ? WHERE id = ? AND (last_used_ms IS NULL OR last_used_ms < ?)",
                )
                .bind(*at).bind(id.as_str()).bind(*at)
                .execute(&mut **tx).await?;
            }
            Ok(crate::db::Finish::Commit(()))
        }).await)
        .map_err(self.err("recording token use"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_hash_to_hex() {
        let a = generate_secret().expect("OS randomness");
        let b = generate_secret().expect("OS randomness");
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43, "32 bytes are 43 base64url characters: {a}");
        let h = hash_secret(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_secret(&a));
        assert_ne!(h, hash_secret(&b));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_token_name("ci-deployer.prod@eu_1").is_ok());
        for bad in ["", "has space", "x".repeat(65).as_str(), "semi;colon"] {
            let e = check_token_name(bad).expect_err("refused").to_string();
            assert!(e.contains("token name"), "{e}");
        }
    }
}
