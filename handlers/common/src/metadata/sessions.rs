//! Upload sessions: the session row beside its pending upload, and the parts received.

use artifact_store_core::error::ErrorCode;
use artifact_store_core::ports::{MetaResult, PendingUpload};
use artifact_store_core::session::{PartPlan, SessionPart, SessionState, Transfer, UploadSession};
use artifact_store_core::time;

use super::conn::SqlConn;
use super::rows::{Cols, corrupt};
use super::store::{SqlStore, domain, ts};

const SESSION_COLUMNS: &str = "id, package_id, relative_path, media_type, sha256, size_bytes, \
     part_size, part_count, transfer, backend_id, staging_key, backend_upload_id, actor, created_at, \
     expires_at, state, hashed_parts, hash_state";

fn session(row: &super::conn::SqlRow) -> MetaResult<UploadSession> {
    let mut c = Cols::new(row);
    let (id, package_id, relative_path, media_type, sha256) =
        (c.text()?, c.text()?, c.text()?, c.text()?, c.text()?);
    let plan = PartPlan {
        size_bytes: c.u64()?,
        part_size: c.u64()?,
        part_count: u32::try_from(c.int()?).map_err(|_| corrupt("session part count"))?,
    };
    let transfer = Transfer::parse(&c.text()?).ok_or_else(|| corrupt("session transfer"))?;
    Ok(UploadSession {
        id,
        package_id,
        relative_path,
        media_type,
        sha256,
        plan,
        transfer,
        backend_id: c.text()?,
        staging_key: c.text()?,
        backend_upload_id: c.text()?,
        actor: c.text()?,
        created_at: c.time()?,
        expires_at: c.time()?,
        state: SessionState::parse(&c.text()?).ok_or_else(|| corrupt("session state"))?,
        hashed_parts: u32::try_from(c.int()?).map_err(|_| corrupt("session hashed parts"))?,
        hash_state: c.text()?,
    })
}

fn part(row: &super::conn::SqlRow) -> MetaResult<SessionPart> {
    let mut c = Cols::new(row);
    Ok(SessionPart {
        number: u32::try_from(c.int()?).map_err(|_| corrupt("part number"))?,
        size_bytes: c.u64()?,
        sha256: c.text()?,
        etag: c.text()?,
    })
}

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn create_session_impl(&self, s: &UploadSession) -> MetaResult<()> {
        let created = time::truncate(s.created_at);
        let expires = time::truncate(s.expires_at);
        let pending = PendingUpload {
            started_at: created,
            ..s.pending_upload()
        };
        self.write_tx(async || {
            self.begin_upload_impl(&pending).await?;
            self.exec(
                &format!(
                    "INSERT INTO upload_sessions ({SESSION_COLUMNS}, expires_epoch) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                &[
                    s.id.as_str().into(),
                    s.package_id.as_str().into(),
                    s.relative_path.as_str().into(),
                    s.media_type.as_str().into(),
                    s.sha256.as_str().into(),
                    s.plan.size_bytes.into(),
                    s.plan.part_size.into(),
                    i64::from(s.plan.part_count).into(),
                    s.transfer.as_str().into(),
                    s.backend_id.as_str().into(),
                    s.staging_key.as_str().into(),
                    s.backend_upload_id.as_str().into(),
                    s.actor.as_str().into(),
                    ts(created),
                    ts(expires),
                    s.state.as_str().into(),
                    i64::from(s.hashed_parts).into(),
                    s.hash_state.as_str().into(),
                    time::epoch(expires).into(),
                ],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn get_session_impl(
        &self,
        id: &str,
    ) -> MetaResult<Option<(UploadSession, Vec<SessionPart>)>> {
        let Some(row) = self
            .first_row(
                &format!("SELECT {SESSION_COLUMNS} FROM upload_sessions WHERE id = ?"),
                &[id.into()],
            )
            .await?
        else {
            return Ok(None);
        };
        let parts = self
            .rows(
                "SELECT number, size_bytes, sha256, etag FROM upload_session_parts \
                 WHERE session_id = ? ORDER BY number",
                &[id.into()],
            )
            .await?
            .iter()
            .map(part)
            .collect::<MetaResult<Vec<_>>>()?;
        Ok(Some((session(&row)?, parts)))
    }

    pub(crate) async fn record_part_impl(
        &self,
        session_id: &str,
        p: &SessionPart,
        hash_state: Option<&str>,
    ) -> MetaResult<()> {
        self.write_tx(async || {
            let open = self
                .exec(
                    "UPDATE upload_sessions SET state = state WHERE id = ? AND state = 'open'",
                    &[session_id.into()],
                )
                .await?;
            if open != 1 {
                return Err(not_open(session_id));
            }
            let resent = self
                .exec(
                    "DELETE FROM upload_session_parts WHERE session_id = ? AND number = ?",
                    &[session_id.into(), i64::from(p.number).into()],
                )
                .await?
                > 0;
            self.exec(
                "INSERT INTO upload_session_parts (session_id, number, size_bytes, sha256, etag) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    session_id.into(),
                    i64::from(p.number).into(),
                    p.size_bytes.into(),
                    p.sha256.as_str().into(),
                    p.etag.as_str().into(),
                ],
            )
            .await?;
            if resent {
                // Which of two sends of this part the backend kept is unknown here: a
                // running digest that includes the part no longer proves anything, so
                // `complete` reads the file back from the start.
                self.exec(
                    "UPDATE upload_sessions SET hashed_parts = 0, hash_state = '' \
                     WHERE id = ? AND hashed_parts >= ?",
                    &[session_id.into(), i64::from(p.number).into()],
                )
                .await?;
            } else if let Some(state) = hash_state {
                // Only from the part before (a concurrent first send moves it once).
                self.exec(
                    "UPDATE upload_sessions SET hashed_parts = ?, hash_state = ? \
                     WHERE id = ? AND hashed_parts = ?",
                    &[
                        i64::from(p.number).into(),
                        state.into(),
                        session_id.into(),
                        i64::from(p.number - 1).into(),
                    ],
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn mark_assembled_impl(&self, session_id: &str) -> MetaResult<()> {
        let moved = self
            .exec(
                "UPDATE upload_sessions SET state = 'assembled' WHERE id = ? AND state = 'open'",
                &[session_id.into()],
            )
            .await?;
        if moved != 1 {
            return Err(not_open(session_id));
        }
        Ok(())
    }
}

impl<C: SqlConn> SqlStore<C> {
    pub(crate) async fn advance_digest_impl(
        &self,
        session_id: &str,
        from_parts: u32,
        to_parts: u32,
        hash_state: &str,
    ) -> MetaResult<bool> {
        let moved = self
            .exec(
                "UPDATE upload_sessions SET hashed_parts = ?, hash_state = ? \
                 WHERE id = ? AND state = 'assembled' AND hashed_parts = ?",
                &[
                    i64::from(to_parts).into(),
                    hash_state.into(),
                    session_id.into(),
                    i64::from(from_parts).into(),
                ],
            )
            .await?;
        Ok(moved == 1)
    }

    pub(crate) async fn sessions_to_verify_impl(
        &self,
        limit: u32,
    ) -> MetaResult<Vec<UploadSession>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM upload_sessions \
             WHERE state = 'assembled' AND transfer = 'gateway' AND hashed_parts < part_count \
             ORDER BY created_at, id LIMIT {}",
            limit.max(1)
        );
        self.rows(&sql, &[]).await?.iter().map(session).collect()
    }
}

fn not_open(session_id: &str) -> artifact_store_core::ports::MetadataError {
    domain(
        ErrorCode::InvalidState,
        format!("upload session {session_id} is not open (assembled, or ended)"),
    )
}
