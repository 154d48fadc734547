//! Percentiles and formatting of durations.

/// Latency samples in nanoseconds, summarised once sorted.
pub struct Summary {
    sorted: Vec<u64>,
}

impl Summary {
    /// Sorts the samples.
    pub fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Summary { sorted: samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile: the smallest sample such that at least `p` percent
    /// of all samples are at or below it. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1])
    }

    /// Largest sample.
    pub fn max(&self) -> Option<u64> {
        self.sorted.last().copied()
    }

    /// `p50 / p90 / p99 / max` as text.
    pub fn line(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  max {}  (n={})",
            fmt_ns(self.percentile(50.0)),
            fmt_ns(self.percentile(90.0)),
            fmt_ns(self.percentile(99.0)),
            fmt_ns(self.max()),
            self.len()
        )
    }
}

/// A duration in nanoseconds in a readable unit.
pub fn fmt_ns(ns: Option<u64>) -> String {
    let Some(ns) = ns else { return "-".into() };
    if ns < 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 10_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns < 10_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::new((1..=100).rev().collect());
        assert_eq!(s.percentile(50.0), Some(50));
        assert_eq!(s.percentile(99.0), Some(99));
        assert_eq!(s.percentile(100.0), Some(100));
        assert_eq!(s.percentile(0.0), Some(1));
        assert_eq!(s.max(), Some(100));
        let one = Summary::new(vec![7]);
        assert_eq!(one.percentile(99.0), Some(7));
        assert_eq!(Summary::new(Vec::new()).percentile(50.0), None);
        // 1,000 samples: p99 is the 990th smallest.
        let s = Summary::new((1..=1000).collect());
        assert_eq!(s.percentile(99.0), Some(990));
        assert_eq!(s.percentile(90.0), Some(900));
    }
}
