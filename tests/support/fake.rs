//! A fixed in-memory `ui::Backend` whose data carries a hostile string everywhere a
//! record value can appear; an id or user of `boom` fails like an internal error.

use chrono::{DateTime, TimeZone, Utc};
use m365audit::ui::backend::*;

pub const EVIL: &str =
    "<script>fetch('http://127.0.0.1:9/x')</script>\"'><img src=x onerror=alert(1)>";

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, h, 0, 0).unwrap()
}

impl Fake {
    pub fn row(&self, id: &str) -> RecordRow {
        RecordRow {
            id: id.into(),
            creation_time: t(9),
            workload: "OneDrive".into(),
            operation: "FileDownloaded".into(),
            user_id: format!("alice{EVIL}@contoso.com", EVIL = self.evil),
            client_ip: "203.0.113.7".into(),
            object: format!(
                "https://contoso-my.sharepoint.com/{EVIL}.docx",
                EVIL = self.evil
            ),
        }
    }
}

/// A backend with one detection, one record and hostile strings everywhere; an id of
/// `boom` makes a method fail as an internal error would.
pub struct Fake {
    pub evil: String,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            evil: EVIL.to_string(),
        }
    }
}

fn boom(id: &str) -> anyhow::Result<()> {
    if id == "boom" {
        anyhow::bail!("secret internal detail xyzzy");
    }
    Ok(())
}

impl Backend for Fake {
    fn dashboard(&self, hours: usize) -> anyhow::Result<Dashboard> {
        let mut per_hour = vec![0; hours];
        per_hour[hours - 1] = 3;
        Ok(Dashboard {
            now: Some(t(10)),
            collector_id: "12345".into(),
            total_records: 42,
            detections: vec![
                DetectionSummary {
                    id: "onedrive_exfiltration".into(),
                    title: format!("OneDrive exfiltration {EVIL}", EVIL = self.evil),
                    severity: "high".into(),
                    hits: 3,
                    last_hit: Some(t(9)),
                    per_hour,
                },
                DetectionSummary {
                    id: "authentication".into(),
                    title: "Authentication".into(),
                    severity: "medium".into(),
                    hits: 0,
                    last_hit: None,
                    per_hour: vec![0; hours],
                },
            ],
            inactivity: vec![InactivityAlert {
                scope: "12345 × Exchange".into(),
                last_seen: Some(t(1)),
                quiet_secs: 9 * 3600,
            }],
            lags: vec![Lag {
                content_type: "Audit.Exchange".into(),
                lag_secs: Some(120),
                state: "ok".into(),
            }],
            workloads: vec![WorkloadSeries {
                workload: "OneDrive".into(),
                total: 10,
                per_hour: vec![1; hours],
            }],
            warnings: vec![format!("1 blob expired {EVIL}", EVIL = self.evil)],
        })
    }

    fn detection(&self, id: &str, range: TimeRange) -> anyhow::Result<Option<DetectionDetail>> {
        boom(id)?;
        if id != "onedrive_exfiltration" {
            return Ok(None);
        }
        let groups = if range.contains(t(9)) {
            vec![Group {
                key: serde_json::json!({"ClientIP": "203.0.113.7", "file": self.evil}),
                values: vec![
                    "203.0.113.7".into(),
                    self.evil.clone(),
                    "=HYPERLINK(\"http://x\")".into(),
                ],
                count: 3,
                first_seen: t(8),
                last_seen: t(9),
            }]
        } else {
            vec![]
        };
        Ok(Some(DetectionDetail {
            id: id.into(),
            title: "OneDrive exfiltration".into(),
            severity: "high".into(),
            description: format!("Sharing of strategic files {EVIL}", EVIL = self.evil),
            table: "cloud.office365.management.onedrive".into(),
            columns: vec![
                "ClientIP".into(),
                "file".into(),
                "TargetUserOrGroupName".into(),
            ],
            hits: 3,
            groups,
            threshold: None,
        }))
    }

    fn detection_records(
        &self,
        id: &str,
        key: Option<&serde_json::Value>,
        _range: TimeRange,
        _limit: usize,
    ) -> anyhow::Result<Option<Vec<RecordRow>>> {
        if id != "onedrive_exfiltration" {
            return Ok(None);
        }
        if let Some(k) = key {
            assert_eq!(k["ClientIP"], "203.0.113.7");
        }
        Ok(Some(vec![self.row("rec-1")]))
    }

    fn record(&self, id: &str) -> anyhow::Result<Option<RecordDetail>> {
        boom(id)?;
        if id != "rec-1" {
            return Ok(None);
        }
        Ok(Some(RecordDetail {
            row: self.row("rec-1"),
            content_type: "Audit.SharePoint".into(),
            tenant: "tenant-1".into(),
            ingested_at: Some(t(10)),
            user_agent: format!("Mozilla/5.0 {EVIL}", EVIL = self.evil),
            raw_pretty: format!(
                "{{\n  \"Id\": \"rec-1\",\n  \"ObjectId\": \"{EVIL}\"\n}}",
                EVIL = self.evil
            ),
            detections: vec!["onedrive_exfiltration".into()],
            below_threshold: vec!["brute_force_user".into()],
            blob: Some(BlobSummary {
                content_id: format!("blob-{EVIL}", EVIL = self.evil),
                content_type: "Audit.SharePoint".into(),
                records: 2,
            }),
            same_blob: vec![self.row("rec-2")],
            same_time: vec![self.row("rec-3")],
        }))
    }

    /// 450 records, so the timeline has three pages of 200.
    fn user(
        &self,
        user_id: &str,
        _range: TimeRange,
        offset: usize,
        limit: usize,
    ) -> anyhow::Result<UserDetail> {
        boom(user_id)?;
        let tally = |v: &str| Tally {
            value: v.into(),
            count: 2,
            last_seen: Some(t(9)),
        };
        let total = 450;
        Ok(UserDetail {
            user_id: user_id.into(),
            total: total as u64,
            timeline: (offset..(offset + limit).min(total))
                .map(|i| self.row(&format!("rec-{}", i + 1)))
                .collect(),
            activity: Activity {
                unit: "day",
                buckets: vec![(t(0), 400), (t(0) + chrono::Duration::days(1), 50)],
            },
            detections: vec![tally("onedrive_exfiltration")],
            ips: vec![tally("203.0.113.7")],
            user_agents: vec![tally(&format!("curl {EVIL}", EVIL = self.evil))],
            workloads: vec![tally("OneDrive")],
            operations: vec![tally("FileDownloaded")],
        })
    }

    /// Alice's records are the whole detection; anyone else has no hits in it.
    fn detection_for_user(
        &self,
        id: &str,
        range: TimeRange,
        user: &str,
    ) -> anyhow::Result<Option<DetectionDetail>> {
        Ok(self.detection(id, range)?.map(|mut d| {
            if user != "alice@contoso.com" {
                d.groups.clear();
                d.hits = 0;
            }
            d
        }))
    }

    fn ip(&self, ip: &str, _range: TimeRange, _limit: usize) -> anyhow::Result<IpDetail> {
        Ok(IpDetail {
            ip: ip.into(),
            total: 1,
            users: vec![Tally {
                value: format!("mallory{EVIL}", EVIL = self.evil),
                count: 1,
                last_seen: None,
            }],
            operations: vec![],
            records: vec![self.row("rec-1")],
        })
    }

    fn search(&self, req: &SearchRequest) -> anyhow::Result<SearchResult> {
        if req.text.contains('(') && !req.text.contains(')') {
            return Err(m365audit::UsageError(format!("cannot parse query {:?}", req.text)).into());
        }
        Ok(SearchResult {
            total: 120,
            rows: vec![self.row("rec-1")],
            incomplete: None,
        })
    }

    fn tables(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec!["cloud.office365.management".into(), "auth.all".into()])
    }

    fn query(&self, _table: &str, jq: &str, _range: TimeRange) -> anyhow::Result<QueryResult> {
        if jq.contains("|||") {
            return Err(m365audit::UsageError("jq: syntax error near |||".into()).into());
        }
        Ok(QueryResult {
            lines: vec![format!("{{\"UserId\":\"{EVIL}\"}}", EVIL = self.evil)],
            scanned: 42,
            truncated: Some("output limit of 1 reached".into()),
        })
    }

    fn linq(
        &self,
        query: &m365audit::linq::Query,
        range: TimeRange,
        max_rows: usize,
    ) -> anyhow::Result<m365audit::linq::Output> {
        // one stored record carrying the hostile string, run through the real evaluator
        let raw = serde_json::json!({
            "Id": "rec-1",
            "CreationTime": "2026-05-04T09:00:00",
            "Workload": "OneDrive",
            "Operation": "FileDownloaded",
            "UserId": format!("alice{EVIL}@contoso.com", EVIL = self.evil),
        })
        .to_string();
        let v: serde_json::Value = serde_json::from_str(&raw)?;
        let header = m365audit::model::RecordHeader::from_value(&v)?;
        let origin = m365audit::linq::Origin::new("12345", "fake");
        let input = m365audit::linq::Input {
            header: &header,
            raw: &raw,
            ingested_at: t(9),
            origin: Some(&origin),
        };
        let opts = m365audit::linq::Options {
            from: range.from,
            to: range.to,
            max_rows: Some(max_rows),
        };
        query
            .run([input], opts)
            .map_err(|e| m365audit::UsageError(format!("LINQ {e}")).into())
    }

    fn status(&self) -> anyhow::Result<Status> {
        Ok(Status {
            collector_state: "running since 2026-05-04 09:00:00 UTC".into(),
            collector_id: "12345".into(),
            tenant_id: "tenant-1".into(),
            records: 42,
            duplicates_dropped: 7,
            hits: 3,
            streams: vec![StreamStatus {
                content_type: "Audit.Exchange".into(),
                subscription: "enabled".into(),
                cursor: Some(t(9)),
                lag_secs: Some(60),
                last_error: format!("AF20023 {EVIL}", EVIL = self.evil),
                blobs_pending: 1,
                blobs_failed: 2,
                blobs_expired: 3,
            }],
            gaps: vec![GapRow {
                kind: "expired".into(),
                content_type: "Audit.Exchange".into(),
                window_start: Some(t(1)),
                window_end: Some(t(2)),
                count: 1,
                detail: "blob expired before fetch".into(),
                at: Some(t(3)),
            }],
            token_state: "token valid until 11:00 UTC".into(),
            secret_expires_in_days: Some(30),
            detection_errors: vec![format!(
                "broken.jq: 1:5 unexpected token {EVIL}",
                EVIL = self.evil
            )],
            outbox_depth: None,
            index_lag: Some(0),
            imports: vec![m365audit::store::ImportRow {
                file: format!("evidence-{EVIL}.csv", EVIL = self.evil),
                format: "csv".into(),
                damage: Some(format!("line 3: {EVIL}", EVIL = self.evil)),
                ..Default::default()
            }],
            outbox: None,
        })
    }

    fn metrics(&self) -> anyhow::Result<Metrics> {
        Ok(Metrics {
            records: 42,
            duplicates_dropped: 7,
            hits: vec![("onedrive_exfiltration".into(), 3)],
            gaps: vec![("expired".into(), 1)],
            lag_secs: vec![("Audit.Exchange".into(), 60)],
            errors: 2,
            blobs_pending: 1,
            outbox_depth: None,
            outbox_counts: None,
            collector_running: Some(true),
        })
    }
}
