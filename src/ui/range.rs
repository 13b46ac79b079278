//! The time filter every page with one shares, as URL parameters: a relative `range`
//! (`1h`, `24h`, `7d`, `30d`, `all`), counted back from the moment of the request, or an
//! absolute `from` / `to` (any time form records use; UTC, `to` excluded). Either one or the
//! other: a request with both is a 400 page that says so, since which of them the analyst
//! meant cannot be guessed. Parsing only; the pages decide what the range filters.

use super::AppError;
use super::backend::TimeRange;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// The relative ranges the form offers: parameter value and label.
pub const CHOICES: [(&str, &str); 5] = [
    ("1h", "last hour"),
    ("24h", "last 24 h"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
    ("all", "all time"),
];

/// How far back a relative range reaches; `None` for `all`.
fn span(range: &str) -> Option<Option<Duration>> {
    match range {
        "1h" => Some(Some(Duration::hours(1))),
        "24h" => Some(Some(Duration::hours(24))),
        "7d" => Some(Some(Duration::days(7))),
        "30d" => Some(Some(Duration::days(30))),
        "all" => Some(None),
        _ => None,
    }
}

/// `range`, `from` and `to` as a request carries them.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RangeParams {
    #[serde(default)]
    pub range: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

impl RangeParams {
    /// The range at the time of the request.
    pub fn parse(&self) -> Result<TimeRange, AppError> {
        self.parse_at(Utc::now())
    }

    /// The range with relative ranges counted back from `now`.
    pub fn parse_at(&self, now: DateTime<Utc>) -> Result<TimeRange, AppError> {
        let one = |name: &str, v: &str| -> Result<Option<DateTime<Utc>>, AppError> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            crate::model::parse_time(v).map(Some).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "the time range's `{name}` is not a time: {v:?}; use e.g. 2026-05-04 or \
                     2026-05-04T09:00:00Z"
                ))
            })
        };
        let rel = self.range.trim();
        if !rel.is_empty() {
            let Some(back) = span(rel) else {
                return Err(AppError::BadRequest(format!(
                    "unknown time range {rel:?}; use one of {}, or from/to",
                    CHOICES.map(|c| c.0).join(", ")
                )));
            };
            if !self.from.trim().is_empty() || !self.to.trim().is_empty() {
                return Err(AppError::BadRequest(format!(
                    "choose a relative range ({rel}) or From/To, not both: set the range to \
                     \"From/To\" to use the dates, or clear them"
                )));
            }
            return Ok(TimeRange {
                from: back.map(|d| now - d),
                to: None,
            });
        }
        let r = TimeRange {
            from: one("from", &self.from)?,
            to: one("to", &self.to)?,
        };
        if let (Some(f), Some(t)) = (r.from, r.to)
            && f >= t
        {
            return Err(AppError::BadRequest(
                "the time range is empty: `from` must be before `to`".into(),
            ));
        }
        Ok(r)
    }

    /// Whether the request filters by time at all.
    pub fn is_set(&self) -> bool {
        !matches!(self.range.trim(), "" | "all")
            || !self.from.trim().is_empty()
            || !self.to.trim().is_empty()
    }

    /// The range as a query-string suffix (`&range=…` or `&from=…&to=…`), for links that
    /// keep it.
    pub fn suffix(&self) -> String {
        let mut s = String::new();
        for (k, v) in [
            ("range", &self.range),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.trim().is_empty() {
                s.push('&');
                s.push_str(k);
                s.push('=');
                s.push_str(&super::pages::enc(v.trim()));
            }
        }
        s
    }

    /// The form's range choices with the current one selected.
    pub fn choices(&self) -> Vec<Choice> {
        let cur = self.range.trim();
        let mut v = vec![Choice {
            value: String::new(),
            label: "From/To".into(),
            selected: cur.is_empty(),
        }];
        v.extend(CHOICES.iter().map(|(value, label)| Choice {
            value: (*value).into(),
            label: (*label).into(),
            selected: cur == *value,
        }));
        v
    }
}

/// One option of the range select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(range: &str, from: &str, to: &str) -> RangeParams {
        RangeParams {
            range: range.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn relative_ranges_count_back_from_now() {
        let now = crate::model::parse_time("2026-05-04T12:00:00Z").unwrap();
        let r = p("24h", "", "").parse_at(now).unwrap();
        assert_eq!(r.from, crate::model::parse_time("2026-05-03T12:00:00Z"));
        assert_eq!(r.to, None);
        let r = p("1h", "", "").parse_at(now).unwrap();
        assert_eq!(r.from, Some(now - Duration::hours(1)));
        let r = p("7d", "", "").parse_at(now).unwrap();
        assert_eq!(r.from, crate::model::parse_time("2026-04-27T12:00:00Z"));
        let r = p("30d", "", "").parse_at(now).unwrap();
        assert_eq!(r.from, Some(now - Duration::days(30)));
        assert_eq!(
            p("all", "", "").parse_at(now).unwrap(),
            TimeRange::default()
        );
        assert_eq!(p("", "", "").parse_at(now).unwrap(), TimeRange::default());
        assert!(!p("all", "", "").is_set());
        assert!(p("1h", "", "").is_set());
    }

    #[test]
    fn absolute_ranges_parse_or_explain() {
        let now = Utc::now();
        let r = p("", "2026-05-04", "2026-05-05T00:00:00Z")
            .parse_at(now)
            .unwrap();
        assert!(r.from.unwrap() < r.to.unwrap());
        for bad in [
            p("", "yesterday", ""),
            p("", "2026-05-05", "2026-05-04"),
            p("2d", "", ""),
            p("24h", "2026-05-04", ""),
        ] {
            assert!(
                matches!(bad.parse_at(now), Err(AppError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn links_keep_the_range_and_the_form_selects_it() {
        assert_eq!(p("7d", "", "").suffix(), "&range=7d");
        assert_eq!(
            p("", "2026-05-04T09:00:00Z", "").suffix(),
            "&from=2026-05-04T09%3A00%3A00Z"
        );
        let c = p("30d", "", "").choices();
        assert_eq!(c.len(), 6);
        assert!(c.iter().any(|c| c.selected && c.value == "30d"));
        assert!(p("", "", "").choices()[0].selected);
    }
}
