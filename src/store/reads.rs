//! The read methods: plain blocking calls on read-only connections from a small pool (in
//! async code, inside `spawn_blocking`), and full-text search on the tantivy reader.

use super::*;

impl Store {
    pub(super) fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.inner.pool.lock().map_err(poisoned)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => db::open_reader(&self.inner.db_path)?,
        };
        let r = f(&conn);
        let mut pool = self.inner.pool.lock().map_err(poisoned)?;
        if pool.len() < 8 {
            pool.push(conn);
        }
        r
    }

    pub fn cursor(&self, tenant: &str, ct: ContentType) -> Result<Option<DateTime<Utc>>> {
        self.with_conn(|c| {
            let v: Option<i64> = c
                .query_row(
                    "SELECT cursor FROM cursors JOIN tenants t ON t.id = cursors.tenant \
                     WHERE t.name = ?1 AND content_type = ?2",
                    params![tenant.to_ascii_lowercase(), ct.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.map(db::millis_to_time))
        })
    }

    /// Pending blobs of one content type due at `now`, oldest contentCreated first.
    pub fn pending_blobs(
        &self,
        tenant: &str,
        ct: ContentType,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingBlob>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT b.id, b.content_id, b.content_uri, b.content_created, \
                 b.content_expiration, b.attempts FROM blobs b JOIN tenants t ON t.id = b.tenant \
                 WHERE t.name = ?1 AND b.content_type = ?2 AND b.state = 'pending' \
                 AND b.next_attempt_at <= ?3 ORDER BY b.content_created, b.id LIMIT ?4",
            )?;
            let rows = st.query_map(
                params![
                    tenant.to_ascii_lowercase(),
                    ct.as_str(),
                    now.timestamp_millis(),
                    limit as i64
                ],
                |r| {
                    let created = db::millis_to_time(r.get(3)?);
                    let expires = db::millis_to_time(r.get(4)?);
                    Ok(PendingBlob {
                        blob_id: r.get(0)?,
                        blob: BlobRef {
                            content_type: ct.as_str().to_string(),
                            content_id: r.get(1)?,
                            content_uri: r.get(2)?,
                            content_created: format_api_time(created),
                            content_expiration: format_api_time(expires),
                        },
                        attempts: r.get(5)?,
                        content_created: created,
                        content_expiration: expires,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// When the earliest pending blob of a content type becomes due (None: none pending).
    pub fn next_pending_due(&self, tenant: &str, ct: ContentType) -> Result<Option<DateTime<Utc>>> {
        self.with_conn(|c| {
            let v: Option<i64> = c.query_row(
                "SELECT min(b.next_attempt_at) FROM blobs b JOIN tenants t ON t.id = b.tenant \
                 WHERE t.name = ?1 AND b.content_type = ?2 AND b.state = 'pending'",
                params![tenant.to_ascii_lowercase(), ct.as_str()],
                |r| r.get(0),
            )?;
            Ok(v.map(db::millis_to_time))
        })
    }

    pub fn pending_count(&self, tenant: &str, ct: ContentType) -> Result<i64> {
        self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM blobs b JOIN tenants t ON t.id = b.tenant \
                 WHERE t.name = ?1 AND b.content_type = ?2 AND b.state = 'pending'",
                params![tenant.to_ascii_lowercase(), ct.as_str()],
                |r| r.get(0),
            )?)
        })
    }

    pub(super) fn query_records(
        &self,
        sql_where: &str,
        args: Vec<rusqlite::types::Value>,
        tail: &str,
    ) -> Result<Vec<StoredRecord>> {
        self.with_conn(|c| {
            let sql = format!(
                "SELECT {} FROM {} WHERE {sql_where} {tail}",
                db::RECORD_COLUMNS,
                db::RECORD_FROM
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(db::read_record(&self.inner.codec, c, row)?);
            }
            Ok(out)
        })
    }

    /// Whether `table` names a table (docs/architecture.md, Tables): a usage error naming
    /// it otherwise, so a command can refuse it before it starts writing anything.
    pub fn check_table(table: &str) -> Result<()> {
        db::known_table_filter(table).map(|_| ())
    }

    /// Records of one table (docs/architecture.md, Tables) with rowid > `after_rowid`, in rowid order.
    pub fn records_page(
        &self,
        table: &str,
        after_rowid: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let (cond, params) = db::known_table_filter(table)?;
        let mut args: Vec<rusqlite::types::Value> = params.into_iter().map(Into::into).collect();
        args.push(after_rowid.into());
        args.push((limit as i64).into());
        self.query_records(
            &format!("({cond}) AND r.rowid > ?"),
            args,
            "ORDER BY r.rowid LIMIT ?",
        )
    }

    /// Streams the records of one table in rowid order; `f` returns false to stop.
    pub fn for_each_record(
        &self,
        table: &str,
        after_rowid: i64,
        mut f: impl FnMut(StoredRecord) -> Result<bool>,
    ) -> Result<()> {
        let mut after = after_rowid;
        loop {
            let page = self.records_page(table, after, 1000)?;
            if page.is_empty() {
                return Ok(());
            }
            for r in page {
                after = r.rowid;
                if !f(r)? {
                    return Ok(());
                }
            }
        }
    }

    pub fn record_by_rowid(&self, rowid: i64) -> Result<Option<StoredRecord>> {
        Ok(self
            .query_records("r.rowid = ?", vec![rowid.into()], "")?
            .into_iter()
            .next())
    }

    /// The record with this Id (the first tenant's, if several tenants have it).
    pub fn record_by_id(&self, id: &str) -> Result<Option<StoredRecord>> {
        Ok(self
            .query_records(
                "r.id = ?",
                vec![id.to_string().into()],
                "ORDER BY r.rowid LIMIT 1",
            )?
            .into_iter()
            .next())
    }

    /// The newest `limit` records of a user (exact UserId, case-insensitive). Answered by
    /// the search index, plus a scan of the few rows it has not indexed yet.
    pub fn records_of_user(&self, user: &str, limit: usize) -> Result<Vec<StoredRecord>> {
        self.records_by_term("user", user, "r.user_id = ? COLLATE NOCASE", limit)
    }

    /// The newest `limit` records from a client IP (normalized as in the header).
    pub fn records_of_ip(&self, ip: &str, limit: usize) -> Result<Vec<StoredRecord>> {
        let ip = crate::model::normalize_ip(ip);
        self.records_by_term("ip", &ip, "r.client_ip = ?", limit)
    }

    pub(super) fn records_by_term(
        &self,
        field: &str,
        value: &str,
        sql_cond: &str,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let (upto, mut out) = match &self.inner.searcher {
            Some(s) => {
                let upto = s.indexed_upto()?;
                let mut out = Vec::new();
                for rowid in s.rowids_for_term(field, value, limit)? {
                    if let Some(r) = self.record_by_rowid(rowid)? {
                        out.push(r);
                    }
                }
                (upto, out)
            }
            None => (0, Vec::new()),
        };
        // rows the index does not cover yet (normally a few seconds' worth)
        out.extend(self.query_records(
            &format!("r.rowid > ? AND {sql_cond}"),
            vec![upto.into(), value.to_string().into()],
            "",
        )?);
        out.sort_by(|a, b| {
            b.header
                .creation_time
                .cmp(&a.header.creation_time)
                .then(b.rowid.cmp(&a.rowid))
        });
        out.dedup_by_key(|r| r.rowid);
        out.truncate(limit);
        Ok(out)
    }

    pub(super) fn query_hits(
        &self,
        sql_where: &str,
        args: Vec<rusqlite::types::Value>,
        tail: &str,
    ) -> Result<Vec<StoredHit>> {
        self.with_conn(|c| {
            let sql = format!(
                "SELECT id, detection, record_rowid, record_id, creation_time, group_key, details \
                 FROM hits_named WHERE {sql_where} {tail}"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                let gk: String = r.get(5)?;
                let d: String = r.get(6)?;
                Ok(StoredHit {
                    id: r.get(0)?,
                    detection: r.get(1)?,
                    record_rowid: r.get(2)?,
                    record_id: r.get(3)?,
                    creation_time: db::secs_to_time(r.get(4)?),
                    group_key: serde_json::from_str(&gk).unwrap_or(Value::String(gk)),
                    details: serde_json::from_str(&d).unwrap_or(Value::String(d)),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Hits (of one detection, or all) with id > `after_id`, in id order.
    pub fn hits(
        &self,
        detection: Option<&str>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredHit>> {
        match detection {
            Some(d) => self.query_hits(
                "detection = ? AND id > ?",
                vec![d.to_string().into(), after_id.into()],
                &format!("ORDER BY id LIMIT {limit}"),
            ),
            None => self.query_hits(
                "id > ?",
                vec![after_id.into()],
                &format!("ORDER BY id LIMIT {limit}"),
            ),
        }
    }

    /// Streams hits in id order; `f` returns false to stop.
    pub fn for_each_hit(
        &self,
        detection: Option<&str>,
        mut f: impl FnMut(StoredHit) -> Result<bool>,
    ) -> Result<()> {
        let mut after = 0;
        loop {
            let page = self.hits(detection, after, 1000)?;
            if page.is_empty() {
                return Ok(());
            }
            for h in page {
                after = h.id;
                if !f(h)? {
                    return Ok(());
                }
            }
        }
    }

    pub fn hits_of_record(&self, rowid: i64) -> Result<Vec<StoredHit>> {
        self.query_hits("record_rowid = ?", vec![rowid.into()], "ORDER BY id")
    }

    /// Number of hits per detection.
    pub fn hit_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT d.name, n.count FROM (SELECT detection, count(*) AS count FROM hits \
                 GROUP BY detection) n JOIN hit_detections d ON d.id = n.detection",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Hits per detection as every surface reports them (`stats`, `/metrics`, the
    /// dashboard, `detect`): a threshold detection counts only its hits inside bursts
    /// (`detect::threshold_groups_of_stored`, 0 when none), any other detection its stored
    /// hits. Detections stored but no longer in `detections` keep their stored count.
    pub fn detection_hit_counts(&self, detections: &Detections) -> Result<BTreeMap<String, i64>> {
        let mut counts = self.hit_counts()?;
        for m in detections.metas() {
            let Some(t) = m.threshold else {
                continue;
            };
            if counts.get(&m.id).copied().unwrap_or(0) == 0 {
                continue;
            }
            let events = self.ui_hit_events(&m.id, None, m.distinct.as_deref(), None, None)?;
            let inside: u64 = crate::detect::threshold_groups_of_stored(m, t, &events)
                .iter()
                .map(|g| g.count)
                .sum();
            counts.insert(m.id.clone(), i64::try_from(inside).unwrap_or(i64::MAX));
        }
        Ok(counts)
    }

    /// Every row of the loss ledger, oldest first.
    pub fn gaps(&self) -> Result<Vec<GapRow>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT g.id, t.name, g.kind, g.content_type, g.window_start, g.window_end, \
                 g.content_id, g.count, g.detail, g.at FROM gaps g JOIN tenants t ON t.id = g.tenant \
                 ORDER BY g.id",
            )?;
            let rows = st.query_map([], |r| {
                let ws: Option<i64> = r.get(4)?;
                let we: Option<i64> = r.get(5)?;
                Ok(GapRow {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    kind: r.get(2)?,
                    content_type: r.get(3)?,
                    window_start: ws.map(|m| format_api_time(db::millis_to_time(m))),
                    window_end: we.map(|m| format_api_time(db::millis_to_time(m))),
                    content_id: r.get(6)?,
                    count: r.get(7)?,
                    detail: r.get(8)?,
                    at: db::secs_to_time(r.get(9)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every stored (tenant, Id), sorted: for comparisons with a ground truth.
    pub fn record_keys(&self) -> Result<Vec<(String, String)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT t.name, r.id FROM {} ORDER BY t.name, r.id",
                db::RECORD_FROM
            ))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every imported file, oldest first.
    pub fn imports(&self) -> Result<Vec<ImportRow>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT file, size, sha256, format, records, stored, duplicates, bad, damage, \
                 started_at, seconds FROM imports ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(ImportRow {
                    file: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    sha256: r.get(2)?,
                    format: r.get(3)?,
                    records: r.get::<_, i64>(4)?.max(0) as u64,
                    stored: r.get::<_, i64>(5)?.max(0) as u64,
                    duplicates: r.get::<_, i64>(6)?.max(0) as u64,
                    bad: r.get::<_, i64>(7)?.max(0) as u64,
                    damage: r.get(8)?,
                    started_at: db::secs_to_time(r.get(9)?),
                    seconds: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Full-text search; `total` counts every match, `hits` are the newest `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Result<SearchResult> {
        let searcher = self.inner.searcher.as_ref().ok_or_else(|| {
            crate::Unavailable(format!(
                "the search index {} does not exist (never built, or deleted); `collect`, \
                 `run` or `import` rebuild it from the database when they open this data \
                 directory",
                self.inner.data_dir.join(index::INDEX_DIR).display()
            ))
        })?;
        let upto = searcher.indexed_upto()?;
        let (total, rowids) = searcher.search(query, limit)?;
        let mut hits = Vec::with_capacity(rowids.len());
        for rowid in rowids {
            if let Some(r) = self.record_by_rowid(rowid)? {
                let table = r
                    .tables()
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| crate::model::TABLE_ALL.to_string());
                hits.push(SearchHit {
                    id: r.header.id,
                    table,
                    creation_time: crate::model::format_record_time(r.header.creation_time),
                    operation: r.header.operation,
                    workload: r.header.workload,
                    user_id: r.header.user_id,
                    client_ip: r.header.client_ip,
                    rowid,
                });
            }
        }
        let not_indexed = self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM records WHERE rowid > ?1",
                [upto],
                |r| r.get::<_, i64>(0),
            )?)
        })?;
        Ok(SearchResult {
            total,
            hits,
            not_indexed: not_indexed.max(0) as u64,
        })
    }

    /// Number of documents in the committed search index (tests, stats).
    pub fn indexed_docs(&self) -> Result<u64> {
        self.inner
            .searcher
            .as_ref()
            .context("no search index")?
            .num_docs()
    }
}
