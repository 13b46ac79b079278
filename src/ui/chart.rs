//! Server-side bar charts: a series of counts → the geometry of SVG rectangles, which a
//! template draws. No script and no inline style are involved (the CSP allows neither);
//! SVG presentation attributes are plain markup.

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
}

/// Draws `series` (oldest first, one value per hour ending now) as bars scaled to the
/// largest value; a zero is drawn as nothing, a non-zero value at least 1 unit tall so a
/// single hit is visible.
pub fn per_hour(series: &[u64], width: u32, height: u32) -> BarChart {
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
            let ago = series.len() - 1 - i;
            Bar {
                x: i as u32 * slot,
                y: height - h,
                width: bar_w,
                height: h,
                label: if ago == 0 {
                    format!("this hour: {v}")
                } else {
                    format!("{ago} h ago: {v}")
                },
            }
        })
        .collect();
    BarChart {
        width: slot * n,
        height,
        bars,
        max,
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
    fn an_empty_series_draws_nothing() {
        assert!(per_hour(&[], 40, 20).bars.is_empty());
        assert!(per_hour(&[0, 0], 40, 20).bars.is_empty());
    }
}
