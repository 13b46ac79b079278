//! The UI's one write: triage of a detection group (`POST /detections/{id}/triage`), the
//! per-group triage page (`GET` of the same path), and what the dashboard and detection
//! page show of triage (counts by state, what is new since triage, the forms).
//!
//! A write must pass, in order: the backend accepts writes (not `serve --read-only`, not
//! a store that cannot be written — otherwise 403 and no form is ever shown); the Origin
//! header, when present, is this UI's own (a page of another site cannot post here: 403);
//! the form's `csrf` field carries this process's token ([`CsrfToken`], 403 without it).
//! The Origin rule also guards the GET pages that run code from their URL (the query
//! page), together with the browser's `Sec-Fetch-*` marks ([`check_not_cross_site`]).
//! The access token, where one is set, was already checked by the router's middleware for
//! this route as for every page. Nothing here runs script: the forms are plain HTML
//! (the CSP is unchanged). The write itself is the store's ([`crate::store::TriageWriter`]).

use super::backend::DetectionDetail;
use super::pages::enc;
use super::{AppError, AppState};
use crate::store::{TriageChange, TriageRow, TriageState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Groups of a detection page that carry a triage form; the others link to their own
/// triage page (a page of 2000 forms helps nobody).
pub const FORMS_ON_PAGE: usize = 100;

/// Author text of a change made through the UI (it has no accounts).
pub const UI_AUTHOR: &str = "web UI";

/// The token every triage form carries: random per process, compared in constant time.
/// Pages of other sites cannot read it (same-origin policy), so they cannot post a form
/// that has it.
#[derive(Clone)]
pub struct CsrfToken(String);

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

impl CsrfToken {
    pub fn generate() -> CsrfToken {
        CsrfToken(super::AccessToken::generate().reveal().to_string())
    }

    pub fn value(&self) -> &str {
        &self.0
    }

    fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Triage counts of one detection, as the dashboard shows them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TriageCounts {
    pub detection: String,
    /// Groups nobody triaged yet, plus those set to `new`.
    pub new: u64,
    pub investigating: u64,
    pub false_positive: u64,
    pub resolved: u64,
    /// Resolved or false-positive groups with hits since (counted here, not under their
    /// stored state).
    pub reopened: u64,
    /// Hits of triaged groups stored after their state was set.
    pub new_hits: u64,
}

impl TriageCounts {
    /// Adds one triaged group.
    pub fn add(&mut self, r: &TriageRow) {
        if r.reopened {
            self.reopened += 1;
        } else {
            match r.state {
                TriageState::New => self.new += 1,
                TriageState::Investigating => self.investigating += 1,
                TriageState::FalsePositive => self.false_positive += 1,
                TriageState::Resolved => self.resolved += 1,
            }
        }
        self.new_hits += r.new_hits;
    }

    /// "4 new · 1 investigating · 1 reopened · 3 new hits since triage" (zeros left out).
    pub fn text(&self) -> String {
        let mut parts: Vec<String> = [
            (self.new, "new"),
            (self.investigating, "investigating"),
            (self.false_positive, "false positive"),
            (self.resolved, "resolved"),
            (self.reopened, "reopened"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        match self.new_hits {
            0 => {}
            1 => parts.push("1 new hit since triage".into()),
            n => parts.push(format!("{n} new hits since triage")),
        }
        parts.join(" · ")
    }
}

/// The dashboard's triage column.
#[derive(Debug, Default)]
pub struct DashboardTriage {
    by_detection: HashMap<String, TriageCounts>,
}

impl DashboardTriage {
    /// The counts of one detection in words; empty for a detection without groups.
    pub fn text(&self, id: &str) -> String {
        self.by_detection
            .get(id)
            .map(TriageCounts::text)
            .unwrap_or_default()
    }

    /// Whether a detection has a reopened group (the row is marked).
    pub fn reopened(&self, id: &str) -> bool {
        self.by_detection.get(id).is_some_and(|c| c.reopened > 0)
    }
}

/// Reads the dashboard's triage counts. A failure costs the column, never the page.
pub async fn dashboard(st: &AppState) -> DashboardTriage {
    let b = st.backend.clone();
    let counts = tokio::task::spawn_blocking(move || b.triage_counts()).await;
    match counts {
        Ok(Ok(v)) => DashboardTriage {
            by_detection: v.into_iter().map(|c| (c.detection.clone(), c)).collect(),
        },
        Ok(Err(e)) => {
            tracing::warn!(error = format!("{e:#}"), "reading triage counts failed");
            DashboardTriage::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading triage counts panicked");
            DashboardTriage::default()
        }
    }
}

/// A group key as form text: JSON with every non-ASCII character as a `\u` escape, so the
/// page's escaping (which makes bidi controls visible) cannot change it on its way back.
pub fn key_text(key: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in key.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// One option of the state select.
pub struct StateOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

fn options(current: TriageState) -> Vec<StateOption> {
    TriageState::ALL
        .iter()
        .map(|s| StateOption {
            value: s.as_str(),
            label: s.label(),
            selected: *s == current,
        })
        .collect()
}

/// The triage of one group row on a detection page.
pub struct TriageCell {
    /// The stored state's words ("new" for an untriaged group).
    pub state: String,
    /// `new`, `investigating`, `false_positive`, `resolved` or `reopened`: a CSS class.
    pub class: String,
    pub assignee: String,
    /// "reopened: 3 new hits since resolved", or empty.
    pub since: String,
    /// The newest note, if any.
    pub last_note: String,
    /// The group key as the form sends it back.
    pub key: String,
    pub options: Vec<StateOption>,
    /// Whether the row carries a form (else the group's own page, `page_href`, does when
    /// this UI may write).
    pub form: bool,
    /// The group's triage page: its history and a form.
    pub page_href: String,
}

/// What a detection page shows of triage.
pub struct DetectionTriage {
    /// False when this UI cannot write: no forms at all.
    pub writable: bool,
    pub csrf: String,
    /// Where a save returns to (the page with its query), or empty for the plain page.
    pub back: String,
    pub action: String,
    /// Counts by state in words.
    pub summary: String,
    pub cells: Vec<TriageCell>,
    empty: TriageCell,
}

impl DetectionTriage {
    /// The cell of the group at `i` (a blank one past the end).
    pub fn cell(&self, i: &usize) -> &TriageCell {
        self.cells.get(*i).unwrap_or(&self.empty)
    }
}

fn blank_cell() -> TriageCell {
    TriageCell {
        state: "new".into(),
        class: "new".into(),
        assignee: String::new(),
        since: String::new(),
        last_note: String::new(),
        key: String::new(),
        options: options(TriageState::New),
        form: false,
        page_href: String::new(),
    }
}

fn cell_of(row: Option<&TriageRow>, key: String, form: bool, page_href: String) -> TriageCell {
    match row {
        None => TriageCell {
            key,
            form,
            page_href,
            ..blank_cell()
        },
        Some(r) => TriageCell {
            state: r.state.label().into(),
            class: r.effective().into(),
            assignee: r.assignee.clone(),
            since: r.since_text(),
            last_note: r
                .notes
                .iter()
                .rev()
                .find(|n| !n.note.is_empty())
                .map(|n| n.note.clone())
                .unwrap_or_default(),
            key,
            options: options(r.state),
            form,
            page_href,
        },
    }
}

async fn rows_of(st: &AppState, id: &str) -> Result<Vec<TriageRow>, AppError> {
    let b = st.backend.clone();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || b.triage(&id))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a triage read panicked: {e}")))?
        .map_err(AppError::from)
}

/// The triage part of a detection page, aligned with its groups. `query` is the page's
/// own query string: a save returns to the page as it was (its range, its user filter).
pub async fn for_detection(
    st: &AppState,
    d: &DetectionDetail,
    query: Option<&str>,
) -> Result<DetectionTriage, AppError> {
    let rows = rows_of(st, &d.id).await?;
    let by_key: HashMap<&str, &TriageRow> = rows.iter().map(|r| (r.key.as_str(), r)).collect();
    let writable = st.backend.triage_writable();
    let action = format!("/detections/{}/triage", enc(&d.id));
    let mut counts = TriageCounts::default();
    let mut seen = std::collections::HashSet::new();
    let mut cells = Vec::with_capacity(d.groups.len());
    for (i, g) in d.groups.iter().enumerate() {
        let canonical = g.key.to_string();
        let row = by_key.get(canonical.as_str()).copied();
        // One key may have several bursts (threshold rules): count the group once.
        if seen.insert(canonical.clone()) {
            match row {
                Some(r) => counts.add(r),
                None => counts.new += 1,
            }
        }
        let key = key_text(&g.key);
        let page_href = format!("{action}?key={}", enc(&key));
        cells.push(cell_of(row, key, writable && i < FORMS_ON_PAGE, page_href));
    }
    let summary = counts.text();
    let back = match query {
        Some(q) if !q.is_empty() => format!("/detections/{}?{q}", enc(&d.id)),
        _ => String::new(),
    };
    Ok(DetectionTriage {
        writable,
        csrf: st.csrf.value().to_string(),
        back,
        action,
        summary: if summary.is_empty() {
            "no groups".into()
        } else {
            summary
        },
        cells,
        empty: blank_cell(),
    })
}

// ---------------------------------------------------------------- the per-group page

#[derive(Debug, Default, Deserialize)]
pub struct KeyParam {
    #[serde(default)]
    key: String,
}

pub struct NoteRow {
    pub at: String,
    pub author: String,
    pub state: String,
    pub assignee: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "triage.html")]
struct TriagePage {
    title: String,
    id: String,
    back_href: String,
    records_href: String,
    key_shown: String,
    writable: bool,
    csrf: String,
    action: String,
    cell: TriageCell,
    notes: Vec<NoteRow>,
}

fn bad_key(e: anyhow::Error) -> AppError {
    AppError::BadRequest(format!("{e:#}"))
}

/// `GET /detections/{id}/triage?key=…`: one group's triage, its history and its form.
pub async fn page(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<KeyParam>,
) -> Result<Response, AppError> {
    let canonical = crate::store::canonical_key(&p.key).map_err(bad_key)?;
    let value: serde_json::Value = serde_json::from_str(&canonical)
        .map_err(|e| AppError::BadRequest(format!("the group key is not JSON: {e}")))?;
    let rows = rows_of(&st, &id).await?;
    let row = rows.iter().find(|r| r.key == canonical);
    let writable = st.backend.triage_writable();
    let base = format!("/detections/{}", enc(&id));
    let key = key_text(&value);
    let page = TriagePage {
        title: format!("{id}: triage"),
        back_href: base.clone(),
        records_href: format!("{base}/records?key={}", enc(&key)),
        key_shown: canonical.clone(),
        writable,
        csrf: st.csrf.value().to_string(),
        action: format!("{base}/triage"),
        cell: cell_of(row, key, writable, String::new()),
        notes: row
            .map(|r| {
                r.notes
                    .iter()
                    .rev()
                    .map(|n| NoteRow {
                        at: n.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        author: n.author.clone(),
                        state: n.state.label().into(),
                        assignee: n.assignee.clone(),
                        note: n.note.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        id,
    };
    let html = page
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("rendering a template: {e}")))?;
    Ok(Html(html).into_response())
}

// ---------------------------------------------------------------- the write

/// The form a detection page posts (`application/x-www-form-urlencoded`).
#[derive(Debug, Default)]
pub struct TriageForm {
    key: String,
    state: String,
    /// Absent: unchanged; present (even empty): set.
    assignee: Option<String>,
    note: String,
    csrf: String,
    /// The page to return to (only a page of the same detection is followed).
    back: String,
}

impl TriageForm {
    /// Reads the fields it knows; others are ignored, a repeated one counts once (last).
    fn parse(body: &[u8]) -> TriageForm {
        let mut f = TriageForm::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            let v = v.into_owned();
            match k.as_ref() {
                "key" => f.key = v,
                "state" => f.state = v,
                "assignee" => f.assignee = Some(v),
                "note" => f.note = v,
                "csrf" => f.csrf = v,
                "back" => f.back = v,
                _ => {}
            }
        }
        f
    }
}

/// True when `origin` names this UI as addressed by `host` (`http://` or `https://`).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let origin = origin.trim();
    ["http://", "https://"].iter().any(|s| {
        origin
            .strip_prefix(s)
            .is_some_and(|h| h.eq_ignore_ascii_case(host))
    })
}

/// The Origin rule: a request whose browser names the page that made it (`Origin`) is
/// answered only when that page is this UI's own. `Err` is the 403 to send.
pub fn check_origin(headers: &HeaderMap) -> Result<(), AppError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !origin.to_str().is_ok_and(|o| same_origin(o, host)) {
            return Err(AppError::Forbidden(
                "this request comes from a page of another site (its Origin is not this UI)".into(),
            ));
        }
    }
    Ok(())
}

/// For the pages that run code from their URL (the query page's jq and LINQ): the Origin
/// rule of a write, and a request the browser marks as made by another site's page
/// (`Sec-Fetch-Site` other than `same-origin` or `none`) for anything but a page the
/// analyst opens (`Sec-Fetch-Dest: document`) is refused. A GET needs no token, so without
/// this any page the analyst visits could run queries here with `<img src=…/query?jq=…>`.
/// `Ok(false)`: a page the analyst opened from a link on another site — shown, but its
/// code must not run until they submit it from this UI (the link chose the code, not them).
/// Browsers that send neither header are answered as before (a request from `curl`).
pub fn check_not_cross_site(headers: &HeaderMap) -> Result<bool, AppError> {
    check_origin(headers)?;
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let site = value("sec-fetch-site");
    let foreign = site
        .as_deref()
        .is_some_and(|s| s != "same-origin" && s != "none");
    if foreign && value("sec-fetch-dest").as_deref() != Some("document") {
        return Err(AppError::Forbidden(
            "this request comes from a page of another site, not from a page you opened: \
             queries run only when you open the query page yourself"
                .into(),
        ));
    }
    Ok(!foreign)
}

/// Applies the checks of the module docs; `Err` is the 403 to send. A read-only UI
/// refuses whatever the body holds.
pub fn check_write(st: &AppState, headers: &HeaderMap, csrf: &str) -> Result<(), AppError> {
    if !st.backend.triage_writable() {
        return Err(AppError::Forbidden(
            "this UI is read-only (serve --read-only, or a store that cannot be written): \
             triage cannot be changed here"
                .into(),
        ));
    }
    check_origin(headers)?;
    if !st.csrf.matches(csrf.trim()) {
        return Err(AppError::Forbidden(
            "the form's csrf token is missing or stale: reload the page and submit again".into(),
        ));
    }
    Ok(())
}

/// `POST /detections/{id}/triage`: checks, writes, and sends the browser back to the
/// detection page (303, so a reload does not post again).
pub async fn post(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    // Read as bytes, not with `Form`: a body of another type must meet the 403 of a
    // read-only UI or a foreign Origin, not a 415.
    let f = TriageForm::parse(&body);
    check_write(&st, &headers, &f.csrf)?;
    let state = match f.state.trim() {
        "" => None,
        s => Some(TriageState::parse(s).map_err(bad_key)?),
    };
    let change = TriageChange {
        detection: id.clone(),
        key: f.key,
        state,
        assignee: f.assignee,
        note: f.note,
        author: UI_AUTHOR.into(),
    };
    let b = st.backend.clone();
    tokio::task::spawn_blocking(move || b.set_triage(&change))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("a triage write panicked: {e}")))?
        .map_err(AppError::from)?;
    let page = format!("/detections/{}", enc(&id));
    // Only back to this detection's own page: never another path or host.
    let target = match f.back.strip_prefix(&page) {
        Some(rest) if rest.starts_with('?') && !rest.contains(['\\', '\r', '\n', '#']) => {
            f.back.clone()
        }
        _ => page,
    };
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = header::HeaderValue::from_str(&target) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// A backend's triage counts from its triaged rows and, per detection, how many of its
/// groups have no row (they count as new).
pub fn counts(rows: &[TriageRow], untriaged: &[(String, u64)]) -> Vec<TriageCounts> {
    let mut by: HashMap<&str, TriageCounts> = HashMap::new();
    for r in rows {
        by.entry(r.detection.as_str()).or_default().add(r);
    }
    for (det, n) in untriaged {
        by.entry(det.as_str()).or_default().new += n;
    }
    let mut out: Vec<TriageCounts> = by
        .into_iter()
        .map(|(d, mut c)| {
            c.detection = d.to_string();
            c
        })
        .collect();
    out.sort_by(|a, b| a.detection.cmp(&b.detection));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_be_this_ui() {
        assert!(same_origin("http://127.0.0.1:8365", Some("127.0.0.1:8365")));
        assert!(same_origin("https://LOCALHOST:1", Some("localhost:1")));
        assert!(!same_origin("http://evil.example", Some("127.0.0.1:8365")));
        assert!(!same_origin("null", Some("127.0.0.1:8365")));
        assert!(!same_origin(
            "http://127.0.0.1:8366",
            Some("127.0.0.1:8365")
        ));
        assert!(!same_origin("http://127.0.0.1:8365", None));
    }

    #[test]
    fn keys_survive_the_page_as_ascii() {
        let k = serde_json::json!({"UserId": "admin\u{202e}gnp.exe@fabrikam.com", "n": "é😀"});
        let t = key_text(&k);
        assert!(t.is_ascii(), "{t}");
        let back: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(back, k);
        assert_eq!(crate::store::canonical_key(&t).unwrap(), k.to_string());
    }

    #[test]
    fn untriaged_groups_count_as_new_beside_the_triaged() {
        let row = |det: &str, state, reopened| TriageRow {
            detection: det.into(),
            key: "{}".into(),
            state,
            assignee: String::new(),
            state_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            hit_mark: 0,
            new_hits: u64::from(reopened) * 2,
            reopened,
            notes: Vec::new(),
        };
        let rows = [
            row("a", TriageState::Resolved, true),
            row("a", TriageState::Resolved, false),
            row("b", TriageState::Investigating, false),
        ];
        let c = counts(&rows, &[("a".into(), 5), ("c".into(), 1)]);
        let by: HashMap<&str, &TriageCounts> =
            c.iter().map(|c| (c.detection.as_str(), c)).collect();
        assert_eq!(
            by["a"].text(),
            "5 new · 1 resolved · 1 reopened · 2 new hits since triage"
        );
        assert_eq!(by["b"].text(), "1 investigating");
        assert_eq!(by["c"].text(), "1 new");
    }

    #[test]
    fn counts_words_leave_zeros_out() {
        let c = TriageCounts {
            new: 4,
            investigating: 1,
            reopened: 1,
            new_hits: 3,
            ..Default::default()
        };
        assert_eq!(
            c.text(),
            "4 new · 1 investigating · 1 reopened · 3 new hits since triage"
        );
        assert_eq!(TriageCounts::default().text(), "");
    }
}
