//! Packages: create, read, list (keyset pages with every filter), finalize.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::model::{
    AuditEventType, Package, PackageStatus, Page, RetentionEventType, Timestamp,
};
use artifact_store_core::ports::{AuditDraft, MetaResult, NewPackage, PackageFilter, PageRequest};
use artifact_store_core::time;
use serde_json::json;

use super::conn::{SqlConn, SqlValue};
use super::rows::{self, HOLD_COLUMNS, PACKAGE_COLUMNS};
use super::store::{SqlStore, domain, not_found, ts};
use artifact_store_core::cursor;

/// The filter form of a metadata value: a JSON string's content, else its JSON text.
pub(crate) fn metadata_value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn create_package_impl(&self, new: NewPackage) -> MetaResult<Package> {
        let created_at = time::truncate(new.created_at);
        let expires_at = new.expires_at.map(time::truncate);
        self.write_tx(async || {
            self.exec(
                "INSERT INTO artifact_packages (id, name, producer, subject, retention_class, \
                 status, metadata, created_at, created_epoch) \
                 VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
                &[
                    new.id.as_str().into(),
                    new.name.as_str().into(),
                    new.producer.as_str().into(),
                    new.subject.as_str().into(),
                    new.retention_class.as_str().into(),
                    serde_json::Value::Object(new.metadata.clone())
                        .to_string()
                        .into(),
                    ts(created_at),
                    time::epoch(created_at).into(),
                ],
            )
            .await?;
            // Set apart so no NULL parameter ever targets a BIGINT column (some Postgres
            // hosts type a NULL parameter as text).
            if let Some(expires) = expires_at {
                self.exec(
                    "UPDATE artifact_packages SET expires_at = ?, expires_epoch = ? WHERE id = ?",
                    &[
                        ts(expires),
                        time::epoch(expires).into(),
                        new.id.as_str().into(),
                    ],
                )
                .await?;
            }
            for (key, value) in &new.metadata {
                self.exec(
                    "INSERT INTO package_metadata (package_id, key, value) VALUES (?, ?, ?)",
                    &[
                        new.id.as_str().into(),
                        key.as_str().into(),
                        metadata_value_text(value).into(),
                    ],
                )
                .await?;
            }
            let reason = format!("default rule for {}", new.retention_class.as_str());
            self.insert_retention_event(
                &new.id,
                RetentionEventType::DefaultRuleApplied,
                &reason,
                &new.actor,
                created_at,
                None,
                expires_at,
            )
            .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::PackageCreated,
                    &new.id,
                    &new.actor,
                    json!({
                        "name": new.name,
                        "producer": new.producer,
                        "subject": new.subject,
                        "retention_class": new.retention_class.as_str(),
                        "expires_at": expires_at.map(time::format),
                    }),
                ),
                created_at,
            )
            .await?;
            Ok(())
        })
        .await?;
        self.get_package_impl(&new.id)
            .await?
            .ok_or_else(|| not_found("package", &new.id))
    }

    pub(crate) async fn get_package_impl(&self, id: &str) -> MetaResult<Option<Package>> {
        let sql = format!("SELECT {PACKAGE_COLUMNS} FROM artifact_packages p WHERE p.id = ?");
        let Some(row) = self.first_row(&sql, &[id.into()]).await? else {
            return Ok(None);
        };
        let mut packages = vec![rows::package(&row)?];
        self.attach_holds(&mut packages).await?;
        Ok(packages.pop())
    }

    /// Fills `holds` of each package with one query.
    pub(crate) async fn attach_holds(&self, packages: &mut [Package]) -> MetaResult<()> {
        if packages.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; packages.len()].join(", ");
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM holds h WHERE h.package_id IN ({marks}) \
             ORDER BY h.created_at, h.id"
        );
        let params: Vec<SqlValue> = packages.iter().map(|p| p.id.as_str().into()).collect();
        for row in self.rows(&sql, &params).await? {
            let hold = rows::hold(&row)?;
            if let Some(p) = packages.iter_mut().find(|p| p.id == hold.package_id) {
                p.holds.push(hold);
            }
        }
        Ok(())
    }

    pub(crate) async fn list_packages_impl(
        &self,
        filter: &PackageFilter,
        page: &PageRequest,
    ) -> MetaResult<Page<Package>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        if let Some(producers) = &filter.producers {
            if producers.is_empty() {
                clauses.push("1 = 0".into());
            } else {
                clauses.push(format!(
                    "p.producer IN ({})",
                    vec!["?"; producers.len()].join(", ")
                ));
                params.extend(producers.iter().map(SqlValue::from));
            }
        }
        let equal = [
            ("p.producer", filter.producer.as_deref()),
            ("p.subject", filter.subject.as_deref()),
            ("p.status", filter.status.map(PackageStatus::as_str)),
            (
                "p.retention_class",
                filter.retention_class.map(|c| c.as_str()),
            ),
            ("p.name", filter.name.as_deref()),
        ];
        for (column, value) in equal {
            if let Some(v) = value {
                clauses.push(format!("{column} = ?"));
                params.push(v.into());
            }
        }
        for (key, value) in &filter.metadata {
            clauses.push(
                "EXISTS (SELECT 1 FROM package_metadata m WHERE m.package_id = p.id \
                 AND m.key = ? AND m.value = ?)"
                    .into(),
            );
            params.push(key.into());
            params.push(value.into());
        }
        if let Some(after) = filter.created_after {
            clauses.push("p.created_epoch > ?".into());
            params.push(time::epoch(after).into());
        }
        if let Some(before) = filter.created_before {
            clauses.push("p.created_epoch < ?".into());
            params.push(time::epoch(before).into());
        }
        if let Some(c) = &page.cursor {
            let (created_at, id) = cursor::decode_time(c)?;
            clauses.push("(p.created_at < ? OR (p.created_at = ? AND p.id < ?))".into());
            params.push(ts(created_at));
            params.push(ts(created_at));
            params.push(id.into());
        }
        let limit = page.limit.clamp(1, 1000);
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        // One extra row tells whether another page exists.
        let sql = format!(
            "SELECT {PACKAGE_COLUMNS} FROM artifact_packages p{where_sql} \
             ORDER BY p.created_at DESC, p.id DESC LIMIT {}",
            limit + 1
        );
        let mut items = self
            .rows(&sql, &params)
            .await?
            .iter()
            .map(rows::package)
            .collect::<MetaResult<Vec<_>>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|p| cursor::encode_time(p.created_at, &p.id))
        } else {
            None
        };
        self.attach_holds(&mut items).await?;
        Ok(Page { items, next_cursor })
    }

    pub(crate) async fn finalize_package_impl(
        &self,
        id: &str,
        actor: &str,
        now: Timestamp,
    ) -> MetaResult<Package> {
        let now = time::truncate(now);
        self.write_tx(async || {
            let locked = self.lock_package(id).await?;
            match locked.status {
                PackageStatus::Finalized => return Ok(()),
                PackageStatus::Open => {}
                PackageStatus::Deleting | PackageStatus::Deleted => {
                    return Err(domain(
                        ErrorCode::InvalidState,
                        format!("package {id} is {}", locked.status.as_str()),
                    ));
                }
            }
            self.exec(
                "UPDATE artifact_packages SET status = 'finalized', finalized_at = ? WHERE id = ?",
                &[ts(now), id.into()],
            )
            .await?;
            self.append_audit_in_tx(
                AuditDraft::for_package(
                    AuditEventType::PackageFinalized,
                    id,
                    actor,
                    json!({
                        "file_count": locked.file_count,
                        "total_bytes": locked.total_bytes,
                    }),
                ),
                now,
            )
            .await?;
            Ok(())
        })
        .await?;
        self.get_package_impl(id)
            .await?
            .ok_or_else(|| not_found("package", id))
    }
}
