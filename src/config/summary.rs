//! The human summary `m365audit check` prints (no secrets).

use super::Config;
use chrono::Utc;

impl Config {
    /// The human summary `m365audit check` prints (no secrets).
    pub fn summary(&self) -> String {
        let o = &self.office365;
        let mut s = String::new();
        s.push_str(&format!("config {}: OK\n", self.origin));
        s.push_str(&format!(
            "  collector id   {}{}\n",
            o.collector_id,
            if o.enabled { "" } else { " (disabled)" }
        ));
        s.push_str(&format!("  tenant         {}\n", o.tenant_id));
        s.push_str(&format!("  client id      {}\n", o.client_id));
        s.push_str(&format!(
            "  client secret  {} chars{}\n",
            o.client_secret.expose().chars().count(),
            match o.days_until_secret_expires(Utc::now()) {
                Some(d) if d < 0 => format!(", EXPIRED {} days ago", -d),
                Some(d) => format!(", expires in {d} days"),
                None => String::new(),
            }
        ));
        s.push_str(&format!(
            "  content types  {}\n",
            o.content_types
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        s.push_str(&format!(
            "  cloud          {} (login {}, api {}, auth {:?}, credentials by {:?})\n",
            o.cloud.name(),
            o.login_url,
            o.api_url,
            o.auth_version,
            o.token_auth
        ));
        s.push_str(&format!(
            "  backfill {} h, poll every {} s, overlap {} s, windows ≤ {} s, {} concurrent, {} requests/min, quiet after {} h\n",
            o.backfill_hours,
            o.poll_interval_secs,
            o.overlap_secs,
            o.max_window_secs,
            o.max_concurrency,
            o.requests_per_minute,
            o.quiet_hours
        ));
        s.push_str(&format!(
            "  ui             {}{}\n",
            self.ui.listen,
            if self.ui.token.is_some() {
                " (token required)"
            } else {
                ""
            }
        ));
        s.push_str(&format!(
            "  devo output    {}\n",
            match &self.outputs.devo {
                Some(d) => d.describe(),
                None => "none".to_string(),
            }
        ));
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}
