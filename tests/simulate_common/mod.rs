// Shared helpers for the practice-tenant tests (included with `mod` by each test file).
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use m365audit::simulate::{SimOptions, Simulator};
use serde_json::Value;

pub const NOW: &str = "2026-05-08T10:17:00Z";

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

pub fn opts() -> SimOptions {
    SimOptions {
        now: Some(now()),
        start_frozen: true,
        ..SimOptions::default()
    }
}

pub fn t(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub struct Client {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub token: String,
}

pub fn http() -> reqwest::Client {
    m365audit::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn post_form(http: &reqwest::Client, url: &str, body: String) -> reqwest::Response {
    http.post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

pub async fn token_for(
    http: &reqwest::Client,
    sim: &Simulator,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> reqwest::Response {
    post_form(
        http,
        &format!("{}/{}/oauth2/v2.0/token", sim.login_url, tenant),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "https://manage.office.com/.default"),
        ]),
    )
    .await
}

impl Client {
    pub async fn start(o: SimOptions) -> Client {
        let sim = Simulator::start(o).await.unwrap();
        let http = http();
        let v: Value = token_for(
            &http,
            &sim,
            &sim.tenant_id.clone(),
            &sim.client_id.clone(),
            &sim.client_secret.clone(),
        )
        .await
        .json()
        .await
        .unwrap();
        let token = v["access_token"].as_str().unwrap().to_string();
        Client { sim, http, token }
    }

    pub fn feed(&self) -> String {
        format!(
            "{}/api/v1.0/{}/activity/feed",
            self.sim.api_url, self.sim.tenant_id
        )
    }

    pub fn publisher(&self) -> String {
        format!("PublisherIdentifier={}", self.sim.tenant_id)
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn try_get(&self, url: &str) -> Option<reqwest::Response> {
        self.http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()
    }

    pub async fn post(&self, url: &str) -> reqwest::Response {
        self.http
            .post(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn start_all(&self) {
        for ct in m365audit::model::ContentType::ALL {
            let r = self
                .post(&format!(
                    "{}/subscriptions/start?contentType={ct}&{}",
                    self.feed(),
                    self.publisher()
                ))
                .await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    }

    pub async fn control(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> reqwest::Response {
        let url = format!("{}{}", self.sim.control_url, path);
        let rb = if method == "POST" {
            self.http.post(&url)
        } else {
            self.http.get(&url)
        };
        let rb = match body {
            Some(b) => rb.body(b),
            None => rb,
        };
        rb.send().await.unwrap()
    }

    pub async fn control_json(&self, method: &str, path: &str, body: Option<String>) -> Value {
        self.control(method, path, body).await.json().await.unwrap()
    }

    pub async fn truth_lines(&self) -> Vec<String> {
        let text = self
            .control("GET", "/__control/truth", None)
            .await
            .text()
            .await
            .unwrap();
        text.lines().map(String::from).collect()
    }

    /// Lists one window, following NextPageUri verbatim; retries transient failures.
    pub async fn list_window(
        &self,
        ct: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let first = format!(
            "{}/subscriptions/content?contentType={ct}&startTime={}&endTime={}&{}",
            self.feed(),
            t(start),
            t(end),
            self.publisher()
        );
        let mut url = Some(first.clone());
        let mut attempts = 0;
        while let Some(u) = url.take() {
            attempts += 1;
            assert!(attempts < 500, "too many attempts listing {ct}");
            let Some(r) = self.try_get(&u).await else {
                url = Some(u);
                continue;
            };
            let status = r.status();
            let next = r
                .headers()
                .get("NextPageUri")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body = match r.bytes().await {
                Ok(b) => b,
                Err(_) => {
                    url = Some(u);
                    continue;
                }
            };
            if status != 200 {
                url = Some(u);
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Vec<Value>>(&body) else {
                url = Some(u);
                continue;
            };
            if let Some(n) = &next
                && !n.starts_with(&self.sim.api_url)
            {
                // host pinning: never follow; restart the window
                out.clear();
                url = Some(first.clone());
                continue;
            }
            out.extend(v);
            url = next;
        }
        out
    }

    /// Fetches one blob, retrying transient failures; None when the URI is foreign.
    pub async fn fetch(&self, uri: &str) -> Option<Vec<Value>> {
        if !uri.starts_with(&self.sim.api_url) {
            return None;
        }
        let uri = format!("{uri}?{}", self.publisher());
        for _ in 0..50 {
            let Some(r) = self.try_get(&uri).await else {
                continue;
            };
            if r.status() != 200 {
                continue;
            }
            let Ok(b) = r.bytes().await else { continue };
            if let Ok(v) = serde_json::from_slice::<Vec<Value>>(&b) {
                return Some(v);
            }
        }
        panic!("blob {uri} never came through")
    }

    /// Walks every window of the last 7 days for every content type like a correct
    /// collector and returns the unique records (first copy by Id) as JSON lines.
    pub async fn walk_all(&self, window: Duration) -> Vec<String> {
        let now = self.sim.now();
        let mut seen = std::collections::HashSet::new();
        let mut lines = Vec::new();
        for ct in m365audit::model::ContentType::ALL {
            let mut s = now - Duration::days(7) + Duration::minutes(1);
            let end_all = now + Duration::seconds(1);
            while s < end_all {
                let e = (s + window).min(end_all);
                // a foreign contentUri is never followed: re-list until every blob of
                // the window has been seen with a URI on the API host
                let mut local: std::collections::BTreeMap<String, String> = Default::default();
                let mut all: std::collections::BTreeSet<String> = Default::default();
                for _ in 0..100 {
                    for b in self.list_window(ct.as_str(), s, e).await {
                        let id = b["contentId"].as_str().unwrap().to_string();
                        let uri = b["contentUri"].as_str().unwrap().to_string();
                        all.insert(id.clone());
                        if uri.starts_with(&self.sim.api_url) {
                            local.entry(id).or_insert(uri);
                        }
                    }
                    if local.len() == all.len() {
                        break;
                    }
                }
                assert_eq!(
                    local.len(),
                    all.len(),
                    "some blobs only ever had foreign URIs"
                );
                for uri in local.values() {
                    let recs = self.fetch(uri).await.expect("local uri");
                    for r in recs {
                        if seen.insert(r["Id"].as_str().unwrap().to_string()) {
                            lines.push(r.to_string());
                        }
                    }
                }
                s = e;
            }
        }
        lines
    }
}

/// Runs the real binary; kills it on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
