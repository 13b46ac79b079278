//! Server-side bar charts: a series of counts → the geometry of SVG rectangles, which a
//! template draws. No script and no inline style are involved (the CSP allows neither);
//! SVG presentation attributes are plain markup.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// One bar of a chart, in SVG user units.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Tooltip text, e.g. "3 h ago: 12".
    pub label: String,
}

/// A bar chart of `width` × `height` units.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    pub max: u64,
    /// What one bar is: "per hour" or "per day".
    pub unit: &'static str,
}

/// Draws `series` (oldest first, one value per hour ending now) as bars scaled to the
/// largest value; a zero is drawn as nothing, a non-zero value at least 1 unit tall so a
/// single hit is visible.
pub fn per_hour(series: &[u64], width: u32, height: u32) -> BarChart {
    let n = series.len();
    bars(series, width, height, "per hour", |i, v| {
        let ago = n - 1 - i;
        if ago == 0 {
            format!("this hour: {v}")
        } else {
            format!("{ago} h ago: {v}")
        }
    })
}

/// Draws one bar per UTC day (oldest first), each labelled with its date.
pub fn per_day(days: &[(NaiveDate, u64)], width: u32, height: u32) -> BarChart {
    let series: Vec<u64> = days.iter().map(|(_, n)| *n).collect();
    bars(&series, width, height, "per day", |i, v| {
        format!("{}: {v}", days[i].0.format("%Y-%m-%d"))
    })
}

/// Draws labelled counts (oldest first) as bars; `unit` names what one bar is.
pub fn labelled(series: &[(String, u64)], width: u32, height: u32, unit: &'static str) -> BarChart {
    let values: Vec<u64> = series.iter().map(|(_, n)| *n).collect();
    bars(&values, width, height, unit, |i, v| {
        format!("{}: {v}", series[i].0)
    })
}

/// Sums an hourly series (oldest first; its last value is the hour `now` falls in) into
/// the last `days` UTC calendar days, today included, oldest first. Hours before the
/// first of those days are left out.
pub fn days_of_hours(series: &[u64], now: DateTime<Utc>, days: usize) -> Vec<(NaiveDate, u64)> {
    let today = now.date_naive();
    let mut out: Vec<(NaiveDate, u64)> = (0..days)
        .rev()
        .map(|back| (today - chrono::Days::new(back as u64), 0))
        .collect();
    let n = series.len();
    for (i, v) in series.iter().enumerate() {
        let hour = now - Duration::hours((n - 1 - i) as i64);
        let back = (today - hour.date_naive()).num_days();
        if (0..days as i64).contains(&back) {
            out[days - 1 - back as usize].1 += v;
        }
    }
    out
}

fn bars(
    series: &[u64],
    width: u32,
    height: u32,
    unit: &'static str,
    label: impl Fn(usize, u64) -> String,
) -> BarChart {
    let max = series.iter().copied().max().unwrap_or(0);
    let n = series.len().max(1) as u32;
    let slot = (width / n).max(1);
    let bar_w = slot.saturating_sub(1).max(1);
    let bars = series
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .map(|(i, &v)| {
            let h = ((v as f64 / max as f64) * height as f64).round() as u32;
            let h = h.clamp(1, height);
            Bar {
                x: i as u32 * slot,
                y: height - h,
                width: bar_w,
                height: h,
                label: label(i, v),
            }
        })
        .collect();
    BarChart {
        width: slot * n,
        height,
        bars,
        max,
        unit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_maximum_and_skip_zeros() {
        let c = per_hour(&[0, 5, 10, 1], 40, 20);
        assert_eq!(c.max, 10);
        assert_eq!(c.bars.len(), 3);
        assert_eq!(c.bars[1].height, 20);
        assert_eq!(c.bars[1].y, 0);
        assert_eq!(c.bars[0].height, 10);
        assert_eq!(c.bars[0].x, 10);
        assert_eq!(c.bars[2].height, 2);
        assert_eq!(c.bars[2].label, "this hour: 1");
        assert_eq!(c.bars[0].label, "2 h ago: 5");
    }

    #[test]
    fn hours_sum_into_calendar_days() {
        let now = crate::model::parse_time("2026-05-04T02:30:00Z").unwrap();
        // 50 hours ending with 02:00 on the 4th: 3 on the 4th, 24 on the 3rd, 23 on the 2nd
        let days = days_of_hours(&[1; 50], now, 7);
        assert_eq!(days.len(), 7);
        assert_eq!(days[6], (now.date_naive(), 3));
        assert_eq!(days[5].1, 24);
        assert_eq!(days[4].1, 23);
        assert_eq!(days[0].0.to_string(), "2026-04-28");
        let c = per_day(&days, 70, 20);
        assert_eq!(c.bars.len(), 3);
        assert_eq!(c.bars[2].label, "2026-05-04: 3");
    }

    #[test]
    fn an_empty_series_draws_nothing() {
        assert!(per_hour(&[], 40, 20).bars.is_empty());
        assert!(per_hour(&[0, 0], 40, 20).bars.is_empty());
    }
}
