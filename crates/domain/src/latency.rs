//! Per-hop latency summaries (p50 / p95 / max) from per-bar samples.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The finite samples, sorted: histograms (metrics) and waterfalls (HTML) are built from them.
    pub samples_ms: Vec<f64>,
}

/// Nearest-rank percentiles; an empty sample has no figures rather than zeros.
pub fn summarize(samples: &[f64]) -> Summary {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let n = sorted.len();
        (n > 0).then(|| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    Summary {
        count: sorted.len(),
        p50_ms: rank(0.50),
        p95_ms: rank(0.95),
        max_ms: sorted.last().copied(),
        samples_ms: sorted,
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.p50_ms, self.p95_ms, self.max_ms) {
            (Some(p50), Some(p95), Some(max)) => write!(
                f,
                "p50 {p50:.0} ms, p95 {p95:.0} ms, max {max:.0} ms (n={})",
                self.count
            ),
            _ => f.write_str("no samples"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = summarize(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.max_ms),
            (Some(50.0), Some(95.0), Some(100.0))
        );
        let s = summarize(&[7.0]);
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.max_ms),
            (Some(7.0), Some(7.0), Some(7.0))
        );
        assert_eq!(summarize(&[]).count, 0);
        assert_eq!(summarize(&[]).to_string(), "no samples");
    }
}
