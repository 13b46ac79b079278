//! One handler and one askama struct per page. Handlers parse the request (a bad time
//! range or filter is a 400 page), call the backend on a blocking thread, and turn its
//! plain data into view rows whose links are built here, percent-encoded, so templates
//! never assemble a URL from record data.

use super::backend::{self, Backend, RecordRow, SearchRequest, Tally, TimeRange};
use super::chart::{self, BarChart};
use super::range::{Choice, RangeParams};
use super::store_backend::phrase;
use super::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::fmt::Write as _;

/// Hours the dashboard reads: its charts show the last 7 days per day (the API keeps 7
/// days, so most hits are days old) and the last 24 h per hour.
const DASHBOARD_HOURS: usize = 24 * 8;
const DASHBOARD_DAYS: usize = 7;
/// Rows on one page of records (user timeline, IP, drill-down).
const PAGE_ROWS: usize = 200;
/// Search results per page.
const SEARCH_ROWS: usize = 50;

type Page = Result<Response, AppError>;

/// Renders a template as a 200 page.
fn render(t: impl Template) -> Page {
    let html = t
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("rendering a template: {e}")))?;
    Ok(Html(html).into_response())
}

/// Runs one backend read on the blocking pool (invariant 8).
async fn read<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&dyn Backend) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    let b = st.backend.clone();
    tokio::task::spawn_blocking(move || f(b.as_ref()))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a ui read panicked: {e}")))?
        .map_err(AppError::from)
}

// ---------------------------------------------------------------- formatting and links

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn fmt_opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "—".into())
}

/// "3 min", "2 h 5 min", "4 d 1 h".
fn fmt_secs(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters: safe in a path segment
/// and in a query value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn record_href(id: &str) -> String {
    format!("/records/{}", enc(id))
}

use super::pivots::{ip_href, user_href};

/// A record as a table row, with its links.
pub struct Row {
    pub id: String,
    pub href: String,
    pub time: String,
    pub workload: String,
    pub operation: String,
    pub user: String,
    pub user_href: String,
    pub ip: String,
    pub ip_href: String,
    pub object: String,
}

impl From<&RecordRow> for Row {
    fn from(r: &RecordRow) -> Row {
        Row {
            id: r.id.clone(),
            href: record_href(&r.id),
            time: fmt_time(r.creation_time),
            workload: r.workload.clone(),
            operation: r.operation.clone(),
            user: r.user_id.clone(),
            user_href: user_href(&r.user_id),
            ip: r.client_ip.clone(),
            ip_href: ip_href(&r.client_ip),
            object: r.object.clone(),
        }
    }
}

fn rows(rs: &[RecordRow]) -> Vec<Row> {
    rs.iter().map(Row::from).collect()
}

/// A tally with an optional link.
pub struct TallyRow {
    pub value: String,
    pub href: String,
    pub count: u64,
    pub last_seen: String,
}

fn tallies(ts: &[Tally], href: impl Fn(&str) -> String) -> Vec<TallyRow> {
    ts.iter()
        .map(|t| TallyRow {
            value: t.value.clone(),
            href: href(&t.value),
            count: t.count,
            last_seen: fmt_opt_time(t.last_seen),
        })
        .collect()
}

// ---------------------------------------------------------------- request parameters

// ---------------------------------------------------------------- error page

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    status: u16,
    message: &'a str,
}

/// The page of every error; built without the backend so it cannot fail in turn.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        title,
        status: status.as_u16(),
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{} {title}\n", status.as_u16())).into_response(),
    }
}

// ---------------------------------------------------------------- dashboard

pub struct DetectionCard {
    pub id: String,
    pub href: String,
    pub title: String,
    pub severity: String,
    pub hits: u64,
    pub last_hit: String,
    /// The last 24 h, per hour.
    pub chart: BarChart,
    /// The last 7 days, per day.
    pub week: BarChart,
}

pub struct WorkloadCard {
    pub workload: String,
    pub total: u64,
    pub chart: BarChart,
    pub week: BarChart,
}

/// The dashboard's two charts of an hourly series: the last 7 days per day and the last
/// 24 h per hour, each `width` wide.
fn week_and_day(
    series: &[u64],
    now: Option<DateTime<Utc>>,
    width: u32,
    height: u32,
) -> (BarChart, BarChart) {
    let day = &series[series.len().saturating_sub(24)..];
    let days = chart::days_of_hours(series, now.unwrap_or_else(Utc::now), DASHBOARD_DAYS);
    (
        chart::per_day(&days, width, height),
        chart::per_hour(day, width, height),
    )
}

pub struct LagRow {
    pub content_type: String,
    pub lag: String,
    pub state: String,
}

pub struct AlertRow {
    pub scope: String,
    pub last_seen: String,
    pub quiet: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    title: String,
    now: String,
    collector_id: String,
    total_records: u64,
    lit: usize,
    detections: Vec<DetectionCard>,
    alerts: Vec<AlertRow>,
    lags: Vec<LagRow>,
    workloads: Vec<WorkloadCard>,
    warnings: Vec<String>,
    triage: super::triage::DashboardTriage,
}

pub async fn dashboard(State(st): State<AppState>) -> Page {
    let d = read(&st, |b| b.dashboard(DASHBOARD_HOURS)).await?;
    let triage = super::triage::dashboard(&st).await;
    let detections: Vec<DetectionCard> = d
        .detections
        .iter()
        .map(|s| {
            let (week, chart) = week_and_day(&s.per_hour, d.now, 144, 24);
            DetectionCard {
                id: s.id.clone(),
                href: format!("/detections/{}", enc(&s.id)),
                title: s.title.clone(),
                severity: s.severity.clone(),
                hits: s.hits,
                last_hit: fmt_opt_time(s.last_hit),
                chart,
                week,
            }
        })
        .collect();
    render(DashboardPage {
        title: "Dashboard".into(),
        now: fmt_opt_time(d.now),
        collector_id: d.collector_id,
        total_records: d.total_records,
        lit: detections.iter().filter(|c| c.hits > 0).count(),
        detections,
        alerts: d
            .inactivity
            .iter()
            .map(|a| AlertRow {
                scope: a.scope.clone(),
                last_seen: fmt_opt_time(a.last_seen),
                quiet: fmt_secs(a.quiet_secs),
            })
            .collect(),
        lags: d
            .lags
            .iter()
            .map(|l| LagRow {
                content_type: l.content_type.clone(),
                lag: l.lag_secs.map(fmt_secs).unwrap_or_else(|| "—".into()),
                state: l.state.clone(),
            })
            .collect(),
        workloads: d
            .workloads
            .iter()
            .map(|w| {
                let (week, chart) = week_and_day(&w.per_hour, d.now, 240, 32);
                WorkloadCard {
                    workload: w.workload.clone(),
                    total: w.total,
                    chart,
                    week,
                }
            })
            .collect(),
        warnings: d.warnings,
        triage,
    })
}

// ---------------------------------------------------------------- detection

pub struct GroupRow {
    /// Each group column's value and its pivot link ("" when it is not a user or address).
    pub cells: Vec<(String, String)>,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "detection.html")]
struct DetectionPage {
    title: String,
    id: String,
    name: String,
    severity: String,
    description: String,
    table: String,
    columns: Vec<String>,
    hits: u64,
    groups: Vec<GroupRow>,
    /// For a threshold detection: the rule in words, and how many raw hits it kept.
    rule: String,
    from: String,
    to: String,
    ranges: Vec<Choice>,
    /// Whether a time range filters the groups.
    ranged: bool,
    /// Set when the page shows only the hits of this user's records.
    user: String,
    user_href: String,
    /// The same page for every user.
    unfiltered_href: String,
    csv_href: String,
    json_href: String,
    all_href: String,
    /// The records the detection hit, as `m365audit export --detection` writes them.
    records_jsonl_href: String,
    records_csv_href: String,
    triage: super::triage::DetectionTriage,
}

async fn load_detection(
    st: &AppState,
    id: String,
    range: TimeRange,
) -> Result<backend::DetectionDetail, AppError> {
    let id2 = id.clone();
    read(st, move |b| b.detection(&id2, range))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no detection {id:?}")))
}

/// `?user=`: the detection page narrowed to the hits of one user's records.
#[derive(Debug, Default, Deserialize)]
pub struct UserFilter {
    #[serde(default)]
    user: String,
}

pub async fn detection(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(rp): Query<RangeParams>,
    Query(uf): Query<UserFilter>,
    uri: axum::http::Uri,
) -> Page {
    let range = rp.parse()?;
    let user = uf.user.trim().to_string();
    let d = if user.is_empty() {
        load_detection(&st, id, range).await?
    } else {
        let (id2, u2) = (id.clone(), user.clone());
        read(&st, move |b| b.detection_for_user(&id2, range, &u2))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("there is no detection {id:?}")))?
    };
    let triage = super::triage::for_detection(&st, &d, uri.query()).await?;
    let base = format!("/detections/{}", enc(&d.id));
    let suffix = rp.suffix();
    let q = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("?{}", &s[1..])
        }
    };
    let user_suffix = if user.is_empty() {
        String::new()
    } else {
        format!("&user={}", enc(&user))
    };
    let drill = |g: &backend::Group| {
        let key = format!("{}{user_suffix}", enc(&g.key.to_string()));
        if d.threshold.is_some() {
            // One key may have several bursts: the link names this one's span, inside
            // which every hit of the key counts (`to` is exclusive).
            format!(
                "{base}/records?key={key}&from={}&to={}",
                enc(&link_time(g.first_seen)),
                enc(&link_time(g.last_seen + chrono::Duration::seconds(1)))
            )
        } else {
            format!("{base}/records?key={key}{suffix}")
        }
    };
    render(DetectionPage {
        title: d.title.clone(),
        groups: d
            .groups
            .iter()
            .map(|g| GroupRow {
                cells: d
                    .columns
                    .iter()
                    .zip(&g.values)
                    .map(|(c, v)| (v.clone(), super::pivots::column_href(c, v)))
                    .collect(),
                count: g.count,
                first_seen: fmt_time(g.first_seen),
                last_seen: fmt_time(g.last_seen),
                href: drill(g),
            })
            .collect(),
        rule: d.threshold.as_ref().map(rule_text).unwrap_or_default(),
        csv_href: format!("{base}/csv{}", q(&suffix)),
        json_href: format!("{base}/json{}", q(&suffix)),
        all_href: format!("{base}/records{}", q(&format!("{suffix}{user_suffix}"))),
        records_jsonl_href: format!("{base}/export?format=jsonl{suffix}"),
        records_csv_href: format!("{base}/export?format=csv{suffix}"),
        id: d.id,
        name: d.title,
        severity: d.severity,
        description: d.description,
        table: d.table,
        columns: d.columns,
        hits: d.hits,
        from: rp.from.clone(),
        to: rp.to.clone(),
        ranges: rp.choices(),
        ranged: rp.is_set(),
        user_href: user_href(&user),
        unfiltered_href: format!("{base}{}", q(&suffix)),
        user,
        triage,
    })
}

/// A time as a link parameter (`RangeParams` reads it back).
fn link_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// "reported only for 10 or more hits per key within 60 min (1234 matched)".
fn rule_text(r: &backend::ThresholdRule) -> String {
    let what = match &r.distinct {
        Some(d) => format!("{} or more distinct {d}", r.count),
        None => format!("{} or more hits", r.count),
    };
    format!(
        "a group is a burst of {what} per key within {}; {} hits matched the filter, \
         only those inside bursts count",
        match r.window_secs {
            w if w > 0 && w % 3600 == 0 => format!("{} h", w / 3600),
            w if w > 0 && w % 60 == 0 => format!("{} min", w / 60),
            w => format!("{w} s"),
        },
        r.matched
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct DrillParams {
    #[serde(default)]
    key: String,
    /// Only the records of this user.
    #[serde(default)]
    user: String,
    #[serde(flatten)]
    range: RangeParams,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    title: String,
    heading: String,
    back_href: String,
    back_label: String,
    note: String,
    rows: Vec<Row>,
}

pub async fn detection_records(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<DrillParams>,
) -> Page {
    let range = p.range.parse()?;
    let key = if p.key.trim().is_empty() {
        None
    } else {
        Some(
            serde_json::from_str::<serde_json::Value>(&p.key)
                .map_err(|e| AppError::BadRequest(format!("the group key is not JSON: {e}")))?,
        )
    };
    let id2 = id.clone();
    let key2 = key.clone();
    let user = p.user.trim().to_string();
    let u2 = user.clone();
    let rs = read(&st, move |b| {
        if u2.is_empty() {
            b.detection_records(&id2, key2.as_ref(), range, PAGE_ROWS)
        } else {
            b.detection_records_for_user(&id2, key2.as_ref(), range, &u2, PAGE_ROWS)
        }
    })
    .await?
    .ok_or_else(|| AppError::NotFound(format!("there is no detection {id:?}")))?;
    let mut note = match &key {
        Some(k) => format!("group {k}"),
        None => "all hits".into(),
    };
    if !user.is_empty() {
        note.push_str(&format!(", only records by {user}"));
    }
    render(RecordsPage {
        title: format!("{id}: records"),
        heading: format!("Records of detection {id}"),
        back_href: if user.is_empty() {
            format!("/detections/{}", enc(&id))
        } else {
            format!("/detections/{}?user={}", enc(&id), enc(&user))
        },
        back_label: format!("back to {id}"),
        note: if rs.len() >= PAGE_ROWS {
            format!("{note} — the newest {PAGE_ROWS} shown")
        } else {
            note
        },
        rows: rows(&rs),
    })
}

/// Audit values are attacker-controlled: a cell that starts a formula would run in Excel,
/// and a raw ESC or CR would act on the terminal of whoever `cat`s the file. The rule is
/// [`crate::model::csv_safe`], the same as `detect --format csv`.
fn csv_cell(s: &str) -> String {
    crate::model::csv_safe(s).into_owned()
}

fn download(body: Vec<u8>, mime: &'static str, name: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A file-name-safe form of a detection id.
fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub async fn detection_csv(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(rp): Query<RangeParams>,
) -> Page {
    let range = rp.parse()?;
    let d = load_detection(&st, id, range).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head: Vec<String> = d.columns.clone();
    head.extend(["count", "first_seen", "last_seen"].map(String::from));
    let to_internal = |e: csv::Error| AppError::Internal(e.into());
    w.write_record(head.iter().map(|h| csv_cell(h)))
        .map_err(to_internal)?;
    for g in &d.groups {
        let mut r: Vec<String> = g.values.iter().map(|v| csv_cell(v)).collect();
        r.push(g.count.to_string());
        r.push(crate::model::format_api_time(g.first_seen));
        r.push(crate::model::format_api_time(g.last_seen));
        w.write_record(&r).map_err(to_internal)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing csv: {e}")))?;
    Ok(download(
        body,
        "text/csv; charset=utf-8",
        format!("{}.csv", file_stem(&d.id)),
    ))
}

/// `?format=jsonl|csv` of a records download.
#[derive(Debug, Default, Deserialize)]
pub struct FormatParam {
    #[serde(default)]
    format: String,
}

impl FormatParam {
    fn parse(&self) -> Result<crate::export::Format, AppError> {
        let f = if self.format.is_empty() {
            "jsonl"
        } else {
            self.format.as_str()
        };
        crate::export::Format::parse(f)
            .map_err(|_| AppError::BadRequest(format!("format must be jsonl or csv, got {f:?}")))
    }
}

/// Streams nothing the export command would not write: the same records, the same bytes.
async fn records_download(
    st: &AppState,
    what: backend::Download,
    format: crate::export::Format,
    stem: String,
) -> Page {
    let body = read(st, move |b| b.download(&what, format)).await?;
    Ok(download(
        body,
        format.mime(),
        format!("{stem}.{}", format.extension()),
    ))
}

pub async fn detection_download(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(rp): Query<RangeParams>,
    Query(f): Query<FormatParam>,
) -> Page {
    let range = rp.parse()?;
    let format = f.parse()?;
    let stem = format!("{}-records", file_stem(&id));
    records_download(
        &st,
        backend::Download::Detection { id, range },
        format,
        stem,
    )
    .await
}

pub async fn user_download(
    State(st): State<AppState>,
    Query(p): Query<UserParams>,
    Query(f): Query<FormatParam>,
) -> Page {
    let range = p.range.parse()?;
    let format = f.parse()?;
    let id = p.id.trim().to_string();
    if id.is_empty() {
        return Err(AppError::BadRequest("which user? add ?id=<UserId>".into()));
    }
    let stem = format!("user-{}", file_stem(&id));
    records_download(&st, backend::Download::User { id, range }, format, stem).await
}

pub async fn search_download(
    State(st): State<AppState>,
    Query(p): Query<SearchParams>,
    Query(f): Query<FormatParam>,
) -> Page {
    let range = p.range.parse()?;
    let format = f.parse()?;
    let req = SearchRequest {
        text: p.q.trim().to_string(),
        user: p.user.trim().to_string(),
        ip: p.ip.trim().to_string(),
        operation: p.operation.trim().to_string(),
        workload: p.workload.trim().to_string(),
        table: p.table.trim().to_string(),
        range,
        limit: backend::DOWNLOAD_MAX,
        offset: 0,
    };
    records_download(&st, backend::Download::Search(req), format, "search".into()).await
}

pub async fn detection_json(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(rp): Query<RangeParams>,
) -> Page {
    let range = rp.parse()?;
    let d = load_detection(&st, id, range).await?;
    // The shape of `detect --format json` (docs/architecture.md, CLI), for one detection.
    let mut doc = serde_json::json!({"detections": [{
        "id": d.id, "title": d.title, "severity": d.severity, "hits": d.hits,
        "groups": d.groups.iter().map(|g| serde_json::json!({
            "key": g.key, "count": g.count,
            "first_seen": crate::model::format_api_time(g.first_seen),
            "last_seen": crate::model::format_api_time(g.last_seen),
        })).collect::<Vec<_>>(),
    }]});
    if let Some(r) = &d.threshold {
        // As `detect --format json` adds them for a threshold rule.
        let mut th = serde_json::json!({"count": r.count, "window_secs": r.window_secs});
        if let Some(x) = &r.distinct {
            th["distinct"] = x.clone().into();
        }
        doc["detections"][0]["threshold"] = th;
        doc["detections"][0]["matched"] = r.matched.into();
    }
    let body = serde_json::to_vec_pretty(&doc).map_err(|e| AppError::Internal(e.into()))?;
    Ok(download(
        body,
        "application/json",
        format!("{}.json", file_stem(&d.id)),
    ))
}

// ---------------------------------------------------------------- record

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    title: String,
    row: Row,
    content_type: String,
    tenant: String,
    ingested_at: String,
    user_agent: String,
    object_href: String,
    raw_pretty: String,
    detections: Vec<(String, String)>,
    below_threshold: Vec<(String, String)>,
    /// "contentId (content type, N records)", empty for a record without a blob.
    blob: String,
    /// How many of the blob's other records are not listed.
    blob_more: u64,
    same_blob: Vec<Row>,
    same_time: Vec<Row>,
}

pub async fn record(State(st): State<AppState>, Path(id): Path<String>) -> Page {
    let id2 = id.clone();
    let r = read(&st, move |b| b.record(&id2))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no record with Id {id:?}")))?;
    render(RecordPage {
        title: format!("Record {}", r.row.id),
        object_href: format!("/search?q={}", enc(&phrase(&r.row.object))),
        row: Row::from(&r.row),
        content_type: r.content_type,
        tenant: r.tenant,
        ingested_at: fmt_opt_time(r.ingested_at),
        user_agent: r.user_agent,
        raw_pretty: r.raw_pretty,
        detections: r
            .detections
            .iter()
            .map(|d| (d.clone(), format!("/detections/{}", enc(d))))
            .collect(),
        below_threshold: r
            .below_threshold
            .iter()
            .map(|d| (d.clone(), format!("/detections/{}", enc(d))))
            .collect(),
        blob: r
            .blob
            .as_ref()
            .map(|b| {
                format!(
                    "{} ({}, {} records)",
                    b.content_id, b.content_type, b.records
                )
            })
            .unwrap_or_default(),
        blob_more: r.blob.as_ref().map_or(0, |b| {
            b.records.saturating_sub(1 + r.same_blob.len() as u64)
        }),
        same_blob: rows(&r.same_blob),
        same_time: rows(&r.same_time),
    })
}

// ---------------------------------------------------------------- user and IP

#[derive(Debug, Default, Deserialize)]
pub struct UserParams {
    #[serde(default)]
    id: String,
    #[serde(default)]
    page: String,
    #[serde(flatten)]
    range: RangeParams,
}

/// A `page` parameter (0 when absent).
fn page_number(v: &str) -> Result<usize, AppError> {
    if v.trim().is_empty() {
        return Ok(0);
    }
    v.trim()
        .parse()
        .ok()
        .filter(|n| *n < 100_000)
        .ok_or_else(|| AppError::BadRequest(format!("bad page number {v:?}")))
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    title: String,
    user_id: String,
    total: u64,
    /// The rows shown: "201–400".
    first: usize,
    last: usize,
    from: String,
    to: String,
    ranges: Vec<Choice>,
    timeline: Vec<Row>,
    activity: BarChart,
    /// The chart's span and bucket, in words.
    activity_note: String,
    prev_href: String,
    next_href: String,
    detections: Vec<TallyRow>,
    ips: Vec<TallyRow>,
    user_agents: Vec<TallyRow>,
    workloads: Vec<TallyRow>,
    operations: Vec<TallyRow>,
    jsonl_href: String,
    csv_href: String,
}

pub async fn user(State(st): State<AppState>, Query(p): Query<UserParams>) -> Page {
    let range = p.range.parse()?;
    let page = page_number(&p.page)?;
    let uid = p.id.trim().to_string();
    if uid.is_empty() {
        return Err(AppError::BadRequest(
            "which user? add ?id=<UserId> (links from records and detections do)".into(),
        ));
    }
    let u2 = uid.clone();
    let offset = page * PAGE_ROWS;
    let u = read(&st, move |b| b.user(&u2, range, offset, PAGE_ROWS)).await?;
    let suffix = p.range.suffix();
    let link = |pg: usize| format!("{}{suffix}&page={pg}", user_href(&uid));
    let fmt_bucket = |t: DateTime<Utc>| match u.activity.unit {
        "hour" => t.format("%Y-%m-%d %H:00").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    };
    let bars: Vec<(String, u64)> = u
        .activity
        .buckets
        .iter()
        .map(|(t, n)| (fmt_bucket(*t), *n))
        .collect();
    let activity_note = match (bars.first(), bars.last()) {
        (Some(a), Some(b)) => format!("{} to {} UTC, one bar per {}", a.0, b.0, u.activity.unit),
        _ => String::new(),
    };
    let shown = u.timeline.len();
    render(UserPage {
        title: format!("User {uid}"),
        total: u.total,
        first: offset + 1,
        last: offset + shown,
        prev_href: if page > 0 {
            link(page - 1)
        } else {
            String::new()
        },
        next_href: if ((offset + shown) as u64) < u.total && shown > 0 {
            link(page + 1)
        } else {
            String::new()
        },
        activity: chart::labelled(&bars, 720, 60, u.activity.unit),
        activity_note,
        from: p.range.from.clone(),
        to: p.range.to.clone(),
        ranges: p.range.choices(),
        timeline: rows(&u.timeline),
        // The detection page narrowed to this user's hits, in the same time range.
        detections: tallies(&u.detections, |d| {
            format!("/detections/{}?user={}{suffix}", enc(d), enc(&uid))
        }),
        ips: tallies(&u.ips, ip_href),
        user_agents: tallies(&u.user_agents, |a| format!("/search?q={}", enc(&phrase(a)))),
        workloads: tallies(&u.workloads, |_| String::new()),
        operations: tallies(&u.operations, |_| String::new()),
        jsonl_href: format!("/user/export?id={}&format=jsonl{suffix}", enc(&uid)),
        csv_href: format!("/user/export?id={}&format=csv{suffix}", enc(&uid)),
        user_id: uid,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct IpParams {
    #[serde(default)]
    addr: String,
    #[serde(flatten)]
    range: RangeParams,
}

#[derive(Template)]
#[template(path = "ip.html")]
struct IpPage {
    title: String,
    ip: String,
    total: u64,
    from: String,
    to: String,
    ranges: Vec<Choice>,
    users: Vec<TallyRow>,
    operations: Vec<TallyRow>,
    records: Vec<Row>,
}

pub async fn ip(State(st): State<AppState>, Query(p): Query<IpParams>) -> Page {
    let range = p.range.parse()?;
    let addr = p.addr.trim().to_string();
    if addr.is_empty() {
        return Err(AppError::BadRequest(
            "which address? add ?addr=<IP address>".into(),
        ));
    }
    let a2 = addr.clone();
    let d = read(&st, move |b| b.ip(&a2, range, PAGE_ROWS)).await?;
    render(IpPage {
        title: format!("IP {addr}"),
        total: d.total,
        from: p.range.from.clone(),
        to: p.range.to.clone(),
        ranges: p.range.choices(),
        users: tallies(&d.users, user_href),
        operations: tallies(&d.operations, |_| String::new()),
        records: rows(&d.records),
        ip: addr,
    })
}

// ---------------------------------------------------------------- search

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    workload: String,
    #[serde(default)]
    table: String,
    #[serde(default)]
    page: String,
    #[serde(flatten)]
    range: RangeParams,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    title: String,
    q: String,
    user: String,
    ip: String,
    operation: String,
    workload: String,
    table: String,
    from: String,
    to: String,
    ranges: Vec<Choice>,
    tables: Vec<String>,
    searched: bool,
    total: u64,
    /// Empty, or what the search could not see (the index is behind the store).
    incomplete: String,
    first: usize,
    rows: Vec<Row>,
    prev_href: String,
    next_href: String,
    jsonl_href: String,
    csv_href: String,
}

pub async fn search(State(st): State<AppState>, Query(p): Query<SearchParams>) -> Page {
    let range = p.range.parse()?;
    let page: usize = if p.page.trim().is_empty() {
        0
    } else {
        p.page
            .trim()
            .parse()
            .ok()
            .filter(|n| *n < 10_000)
            .ok_or_else(|| AppError::BadRequest(format!("bad page number {:?}", p.page)))?
    };
    let req = SearchRequest {
        text: p.q.trim().to_string(),
        user: p.user.trim().to_string(),
        ip: p.ip.trim().to_string(),
        operation: p.operation.trim().to_string(),
        workload: p.workload.trim().to_string(),
        table: p.table.trim().to_string(),
        range,
        limit: SEARCH_ROWS,
        offset: page * SEARCH_ROWS,
    };
    let searched = !(req.text.is_empty()
        && req.user.is_empty()
        && req.ip.is_empty()
        && req.operation.is_empty()
        && req.workload.is_empty()
        && req.table.is_empty()
        && range == TimeRange::default());
    let req2 = req.clone();
    let (tables, result) = read(&st, move |b| {
        let tables = b.tables()?;
        let result = if searched {
            b.search(&req2)?
        } else {
            backend::SearchResult::default()
        };
        Ok((tables, result))
    })
    .await?;
    let link_to = |path: &str| {
        let mut s = format!(
            "{path}?q={}&user={}&ip={}&operation={}&workload={}&table={}",
            enc(&req.text),
            enc(&req.user),
            enc(&req.ip),
            enc(&req.operation),
            enc(&req.workload),
            enc(&req.table)
        );
        s.push_str(&p.range.suffix());
        s
    };
    let link = |pg: usize| {
        let mut s = link_to("/search");
        let _ = write!(s, "&page={pg}");
        s
    };
    let shown_to = req.offset + result.rows.len();
    render(SearchPage {
        title: "Search".into(),
        prev_href: if page > 0 {
            link(page - 1)
        } else {
            String::new()
        },
        next_href: if (shown_to as u64) < result.total && !result.rows.is_empty() {
            link(page + 1)
        } else {
            String::new()
        },
        jsonl_href: format!("{}&format=jsonl", link_to("/search/export")),
        csv_href: format!("{}&format=csv", link_to("/search/export")),
        first: req.offset + 1,
        q: req.text,
        user: req.user,
        ip: req.ip,
        operation: req.operation,
        workload: req.workload,
        table: req.table,
        from: p.range.from.clone(),
        to: p.range.to.clone(),
        ranges: p.range.choices(),
        tables,
        searched,
        total: result.total,
        incomplete: result.incomplete.unwrap_or_default(),
        rows: rows(&result.rows),
    })
}

// ---------------------------------------------------------------- query

#[derive(Debug, Default, Deserialize)]
pub struct QueryParams {
    #[serde(default)]
    table: String,
    #[serde(default)]
    jq: String,
    #[serde(default)]
    linq: String,
    #[serde(flatten)]
    range: RangeParams,
}

/// Rows of a LINQ result the page shows; cells longer than [`LINQ_CELL_MAX`] are cut.
const LINQ_MAX_ROWS: usize = 1000;
const LINQ_CELL_MAX: usize = 300;

#[derive(Template)]
#[template(path = "query.html")]
struct QueryPage {
    title: String,
    table: String,
    jq: String,
    from: String,
    to: String,
    ranges: Vec<Choice>,
    tables: Vec<String>,
    ran: bool,
    /// The URL came from another site's page: its query is shown, not run.
    held: bool,
    lines: Vec<String>,
    scanned: u64,
    truncated: String,
    linq: String,
    linq_ran: bool,
    linq_columns: Vec<String>,
    linq_rows: Vec<Vec<String>>,
    linq_scanned: u64,
    linq_truncated: bool,
    linq_max: usize,
    linq_warnings: Vec<String>,
}

pub async fn query(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(p): Query<QueryParams>,
) -> Page {
    // before anything runs: the URL's jq and LINQ are code; a link from another site's
    // page fills the form but runs nothing until the analyst submits it here
    let may_run = super::triage::check_not_cross_site(&headers)?;
    let range = p.range.parse()?;
    let table = if p.table.trim().is_empty() {
        crate::model::TABLE_ALL.to_string()
    } else {
        p.table.trim().to_string()
    };
    let jq = p.jq.trim().to_string();
    let linq = p.linq.trim().to_string();
    let held = !may_run && (!jq.is_empty() || !linq.is_empty());
    let ran = !jq.is_empty() && may_run;
    let linq_ran = !linq.is_empty() && may_run;
    let (t2, j2, l2) = (
        table.clone(),
        if ran { jq.clone() } else { String::new() },
        if linq_ran {
            linq.clone()
        } else {
            String::new()
        },
    );
    let (tables, result, linq_out) = read(&st, move |b| {
        let tables = b.tables()?;
        if !j2.is_empty() && !tables.contains(&t2) {
            return Err(crate::UsageError(format!(
                "unknown table {t2:?}; valid: {}",
                tables.join(", ")
            ))
            .into());
        }
        let result = if j2.is_empty() {
            backend::QueryResult::default()
        } else {
            b.query(&t2, &j2, range)?
        };
        // parsed off the runtime too (jqcompile compiles with jaq), before any record is
        // read: an error points at its line and column
        let linq_out = if l2.is_empty() {
            crate::linq::Output::default()
        } else {
            let q = crate::linq::Query::parse(&l2)
                .map_err(|e| crate::UsageError(format!("LINQ {}", e.place(&l2))))?;
            b.linq(&q, range, LINQ_MAX_ROWS)?
        };
        Ok((tables, result, linq_out))
    })
    .await?;
    let cell = |s: String| -> String {
        if s.chars().count() > LINQ_CELL_MAX {
            let mut t: String = s.chars().take(LINQ_CELL_MAX - 1).collect();
            t.push('…');
            t
        } else {
            s
        }
    };
    render(QueryPage {
        title: "Query".into(),
        table,
        jq,
        from: p.range.from.clone(),
        to: p.range.to.clone(),
        ranges: p.range.choices(),
        tables,
        ran,
        held,
        lines: result.lines,
        scanned: result.scanned,
        truncated: result.truncated.unwrap_or_default(),
        linq,
        linq_ran,
        linq_rows: linq_out
            .rows
            .iter()
            .map(|r| r.iter().map(|v| cell(v.to_text())).collect())
            .collect(),
        linq_columns: linq_out.columns,
        linq_scanned: linq_out.scanned,
        linq_truncated: linq_out.truncated,
        linq_max: LINQ_MAX_ROWS,
        linq_warnings: linq_out.warnings,
    })
}

// ---------------------------------------------------------------- status and metrics

pub struct StreamRow {
    pub content_type: String,
    pub subscription: String,
    pub cursor: String,
    pub lag: String,
    pub last_error: String,
    pub pending: u64,
    pub failed: u64,
    pub expired: u64,
}

pub struct GapView {
    pub kind: String,
    pub content_type: String,
    pub window: String,
    pub count: u64,
    pub detail: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    title: String,
    imports: Vec<ImportView>,
    collector_state: String,
    collector_id: String,
    tenant_id: String,
    records: u64,
    duplicates_dropped: u64,
    hits: u64,
    streams: Vec<StreamRow>,
    gaps: Vec<GapView>,
    token_state: String,
    secret_days: String,
    detection_errors: Vec<String>,
    outbox_depth: String,
    index_lag: String,
    devo: Option<DevoView>,
}

/// The Devo forwarder on the status page.
struct DevoView {
    target: String,
    connection: String,
    oldest: String,
    sent: u64,
    resent: u64,
    oversized: u64,
    last_error: String,
    down_since: String,
    alert: bool,
    enabled: bool,
}

/// One imported file on the status page.
struct ImportView {
    at: String,
    file: String,
    format: String,
    size: u64,
    sha256: String,
    records: u64,
    stored: u64,
    duplicates: u64,
    bad: u64,
    damage: String,
}

pub async fn status(State(st): State<AppState>) -> Page {
    let s = read(&st, |b| b.status()).await?;
    render(StatusPage {
        title: "Status".into(),
        imports: s
            .imports
            .iter()
            .map(|i| ImportView {
                at: fmt_opt_time(Some(i.started_at)),
                file: i.file.clone(),
                format: i.format.clone(),
                size: i.size,
                sha256: i.sha256.clone(),
                records: i.records,
                stored: i.stored,
                duplicates: i.duplicates,
                bad: i.bad,
                damage: i.damage.clone().unwrap_or_default(),
            })
            .collect(),
        collector_state: s.collector_state,
        collector_id: s.collector_id,
        tenant_id: s.tenant_id,
        records: s.records,
        duplicates_dropped: s.duplicates_dropped,
        hits: s.hits,
        streams: s
            .streams
            .iter()
            .map(|x| StreamRow {
                content_type: x.content_type.clone(),
                subscription: x.subscription.clone(),
                cursor: fmt_opt_time(x.cursor),
                lag: x.lag_secs.map(fmt_secs).unwrap_or_else(|| "—".into()),
                last_error: x.last_error.clone(),
                pending: x.blobs_pending,
                failed: x.blobs_failed,
                expired: x.blobs_expired,
            })
            .collect(),
        gaps: s
            .gaps
            .iter()
            .map(|g| GapView {
                kind: g.kind.clone(),
                content_type: g.content_type.clone(),
                window: match (g.window_start, g.window_end) {
                    (None, None) => "—".into(),
                    (a, b) => format!("{} → {}", fmt_opt_time(a), fmt_opt_time(b)),
                },
                count: g.count,
                detail: g.detail.clone(),
                at: fmt_opt_time(g.at),
            })
            .collect(),
        token_state: s.token_state,
        secret_days: match s.secret_expires_in_days {
            None => "not configured (set client_secret_expires)".into(),
            Some(d) if d < 0 => format!("expired {} days ago", -d),
            Some(d) => format!("in {d} days"),
        },
        detection_errors: s.detection_errors,
        outbox_depth: s
            .outbox_depth
            .map(|n| n.to_string())
            .unwrap_or_else(|| "forwarding off".into()),
        index_lag: s
            .index_lag
            .map(|n| n.to_string())
            .unwrap_or_else(|| "—".into()),
        devo: s.outbox.map(|o| DevoView {
            target: o.target.unwrap_or_else(|| "—".into()),
            connection: o.connection,
            oldest: o
                .oldest_age_secs
                .map(fmt_secs)
                .unwrap_or_else(|| "—".into()),
            sent: o.sent,
            resent: o.resent,
            oversized: o.oversized,
            last_error: o.last_error.unwrap_or_default(),
            down_since: fmt_opt_time(o.down_since),
            alert: o.alert,
            enabled: o.enabled,
        }),
    })
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the Prometheus text exposition format (version 0.0.4).
pub fn prometheus(m: &backend::Metrics) -> String {
    let mut s = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    };
    let one = |v: String| vec![(String::new(), v)];
    metric(
        "m365audit_records_total",
        "counter",
        "Records stored.",
        &one(m.records.to_string()),
    );
    metric(
        "m365audit_duplicates_dropped_total",
        "counter",
        "Duplicate records dropped.",
        &one(m.duplicates_dropped.to_string()),
    );
    let hits: Vec<_> = m
        .hits
        .iter()
        .map(|(d, n)| (format!("{{detection=\"{}\"}}", label(d)), n.to_string()))
        .collect();
    metric(
        "m365audit_hits_total",
        "counter",
        "Detection hits stored, per detection.",
        &hits,
    );
    let gaps: Vec<_> = m
        .gaps
        .iter()
        .map(|(k, n)| (format!("{{kind=\"{}\"}}", label(k)), n.to_string()))
        .collect();
    metric(
        "m365audit_gaps_total",
        "counter",
        "Entries of the loss ledger, per kind.",
        &gaps,
    );
    let lags: Vec<_> = m
        .lag_secs
        .iter()
        .map(|(c, n)| (format!("{{content_type=\"{}\"}}", label(c)), n.to_string()))
        .collect();
    metric(
        "m365audit_lag_seconds",
        "gauge",
        "How far collection is behind now, per content type.",
        &lags,
    );
    metric(
        "m365audit_errors_total",
        "counter",
        "Errors met by the collector.",
        &one(m.errors.to_string()),
    );
    metric(
        "m365audit_blobs_pending",
        "gauge",
        "Blobs listed but not yet stored.",
        &one(m.blobs_pending.to_string()),
    );
    if let Some(up) = m.collector_running {
        metric(
            "m365audit_collector_running",
            "gauge",
            "1 while a collector runs on this store (0 once it stopped, was killed or hangs).",
            &one(u64::from(up).to_string()),
        );
    }
    if let Some(d) = m.outbox_depth {
        metric(
            "m365audit_outbox_depth",
            "gauge",
            "Records waiting to be forwarded.",
            &one(d.to_string()),
        );
    }
    if let Some((sent, resent, oversized, down)) = m.outbox_counts {
        for (name, kind, help, v) in [
            (
                "m365audit_outbox_sent_total",
                "counter",
                "Records Devo accepted.",
                sent,
            ),
            (
                "m365audit_outbox_resent_total",
                "counter",
                "Records sent again after a failed or unconfirmed send.",
                resent,
            ),
            (
                "m365audit_outbox_oversized_total",
                "counter",
                "Records over the size cap, counted and not sent.",
                oversized,
            ),
            (
                "m365audit_devo_down",
                "gauge",
                "1 while the Devo receiver is unreachable.",
                down,
            ),
        ] {
            metric(name, kind, help, &one(v.to_string()));
        }
    }
    s
}

pub async fn metrics(State(st): State<AppState>) -> Page {
    let m = read(&st, |b| b.metrics()).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus(&m),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_values_inside_our_links() {
        assert_eq!(enc("a b/c?d&e=\"<x>"), "a%20b%2Fc%3Fd%26e%3D%22%3Cx%3E");
        assert_eq!(
            record_href("javascript:alert(1)"),
            "/records/javascript%3Aalert%281%29"
        );
        assert_eq!(enc("ü"), "%C3%BC");
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("@SUM"), "'@SUM");
        assert_eq!(csv_cell("alice@contoso.com"), "alice@contoso.com");
        assert_eq!(csv_cell("a\u{1b}]0;x\u{7}"), "a\\u{1b}]0;x\\u{7}");
        assert_eq!(csv_cell("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
    }

    #[test]
    fn prometheus_labels_are_escaped() {
        let m = backend::Metrics {
            records: 3,
            hits: vec![("a\"b".into(), 2)],
            ..Default::default()
        };
        let t = prometheus(&m);
        assert!(t.contains("m365audit_records_total 3\n"));
        assert!(t.contains("m365audit_hits_total{detection=\"a\\\"b\"} 2\n"));
        assert!(t.contains("# TYPE m365audit_lag_seconds gauge"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(5), "5 s");
        assert_eq!(fmt_secs(125), "2 min");
        assert_eq!(fmt_secs(3700), "1 h 1 min");
        assert_eq!(fmt_secs(90000), "1 d 1 h");
    }
}
