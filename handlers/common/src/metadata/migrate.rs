//! Applying `core::migrate`'s embedded sets through `SqlConn`, checked cheaply first.
//!
//! Decision: every request opens the store, so the common path must cost one query:
//! `ensure_migrated` compares the ledger's highest version with the compiled set and only
//! runs `core::migrate::run` when the database is behind (or new). Concurrent first
//! requests do not race: Postgres serializes runners with a session advisory lock; SQLite
//! re-checks the ledger inside each migration's `BEGIN IMMEDIATE` transaction.

use artifact_store_core::migrate::{self, Migration, MigrationConn};
use artifact_store_core::ports::{MetaResult, MetadataError};

use super::conn::{Dialect, SqlConn};
use super::rows::Cols;
use super::store::SqlStore;

/// The compiled migration set for a dialect.
pub fn migration_set(dialect: Dialect) -> &'static [Migration] {
    match dialect {
        Dialect::Sqlite => migrate::SQLITE,
        Dialect::Postgres => migrate::POSTGRES,
    }
}

/// `core::migrate`'s view of a store's connection.
struct Runner<'a, C>(&'a SqlStore<C>);

impl<C: SqlConn> MigrationConn for Runner<'_, C> {
    type Error = MetadataError;

    async fn lock(&self) -> Result<(), MetadataError> {
        if self.0.dialect() == Dialect::Postgres {
            self.0.exec(migrate::POSTGRES_LOCK, &[]).await?;
        }
        Ok(())
    }

    async fn unlock(&self) -> Result<(), MetadataError> {
        if self.0.dialect() == Dialect::Postgres {
            self.0.exec(migrate::POSTGRES_UNLOCK, &[]).await?;
        }
        Ok(())
    }

    async fn ensure_ledger(&self) -> Result<(), MetadataError> {
        let sql = match self.0.dialect() {
            Dialect::Sqlite => migrate::SQLITE_LEDGER,
            Dialect::Postgres => migrate::POSTGRES_LEDGER,
        };
        self.0.exec(sql, &[]).await?;
        Ok(())
    }

    async fn applied(&self) -> Result<Vec<(u32, String)>, MetadataError> {
        let mut out = Vec::new();
        for row in self.0.rows(migrate::SELECT_APPLIED, &[]).await? {
            let mut c = Cols::new(&row);
            let version = u32::try_from(c.int()?)
                .map_err(|_| MetadataError::Unavailable("bad ledger version".into()))?;
            out.push((version, c.text()?));
        }
        Ok(out)
    }

    async fn apply(&self, m: &Migration, applied_at: &str) -> Result<bool, MetadataError> {
        let store = self.0;
        store
            .write_tx(async || {
                // `CAST` fixes the parameter's type as BIGINT on Postgres (the ledger column
                // is INTEGER, and drivers send 64-bit integers).
                let done = store
                    .first_row(
                        "SELECT 1 FROM schema_migrations WHERE version = CAST(? AS BIGINT)",
                        &[i64::from(m.version).into()],
                    )
                    .await?;
                if done.is_some() {
                    return Ok(false);
                }
                for statement in m.statements() {
                    store.exec(&statement, &[]).await?;
                }
                store
                    .exec(
                        "INSERT INTO schema_migrations (version, name, checksum, applied_at) \
                         VALUES (CAST(? AS BIGINT), ?, ?, ?)",
                        &[
                            i64::from(m.version).into(),
                            m.name.as_ref().into(),
                            m.checksum.as_ref().into(),
                            applied_at.into(),
                        ],
                    )
                    .await?;
                Ok(true)
            })
            .await
    }
}

impl<C: SqlConn> SqlStore<C> {
    /// Runs the migration runner unconditionally (it is idempotent).
    pub(crate) async fn migrate_impl(&self) -> MetaResult<()> {
        migrate::run(&Runner(self), migration_set(self.dialect()))
            .await
            .map(|_| ())
            .map_err(|e| MetadataError::Unavailable(e.to_string()))
    }

    /// The cheap check: one query when the schema is current, the runner otherwise.
    pub async fn ensure_migrated(&self) -> MetaResult<()> {
        let target = migration_set(self.dialect())
            .last()
            .map_or(0, |m| i64::from(m.version));
        // A missing ledger table fails this query: that is "behind" too.
        let current = match self
            .first_row("SELECT MAX(version) FROM schema_migrations", &[])
            .await
        {
            Ok(Some(row)) => Cols::new(&row).opt_int()?.unwrap_or(0),
            Ok(None) | Err(_) => 0,
        };
        if current >= target {
            return Ok(());
        }
        self.migrate_impl().await
    }
}
