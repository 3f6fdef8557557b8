//! Percentile histograms with a fixed upper size.
//!
//! hdrhistogram at two significant digits (percentiles within 1%), grown
//! on demand as larger values arrive but never past [`MAX_VALUE`]: a value
//! above it is recorded as `MAX_VALUE`, so no histogram ever holds more
//! than 31 buckets of 128 counts: 31 KiB. Sums and maxima are kept exactly
//! elsewhere.

use hdrhistogram::Histogram;

const SIGFIGS: u8 = 2;
/// Largest value a histogram resolves: 2^36 ns is 68.7 s (or 64 GiB for
/// byte counts).
pub(crate) const MAX_VALUE: u64 = 1 << 36;

/// Records `value` (clamped to [`MAX_VALUE`]) into `histogram`, creating it
/// on first use.
pub(crate) fn record(histogram: &mut Option<Histogram<u64>>, value: u64) {
    let h = histogram.get_or_insert_with(|| {
        Histogram::new(SIGFIGS).expect("2 significant figures is a valid precision")
    });
    // Auto-resizing up to MAX_VALUE only; an error would only mean
    // allocation failure inside the resize, which aborts anyway.
    let _ = h.record(value.min(MAX_VALUE));
}

/// Adds `source` into `target`.
pub(crate) fn add(target: &mut Option<Histogram<u64>>, source: &Option<Histogram<u64>>) {
    if let Some(source) = source {
        match target {
            Some(t) => {
                let _ = t.add(source);
            }
            None => *target = Some(source.clone()),
        }
    }
}

/// The value at quantile `q`, 0 when nothing was recorded.
pub(crate) fn quantile(h: &Option<Histogram<u64>>, q: f64) -> u64 {
    h.as_ref().map_or(0, |h| h.value_at_quantile(q))
}

/// Empties `h`, keeping its memory.
pub(crate) fn reset(h: &mut Option<Histogram<u64>>) {
    if let Some(h) = h {
        h.reset();
    }
}

/// Percentiles of a signed value (a call's net memory change): growths
/// and shrinks in two histograms of magnitudes, zeros counted apart.
#[derive(Clone, Debug, Default)]
pub(crate) struct SignedHistogram {
    growth: Option<Histogram<u64>>,
    shrink: Option<Histogram<u64>>,
    zeros: u64,
}

impl SignedHistogram {
    pub(crate) fn record(&mut self, value: i64) {
        match value {
            0 => self.zeros += 1,
            v if v > 0 => record(&mut self.growth, v as u64),
            v => record(&mut self.shrink, v.unsigned_abs()),
        }
    }

    pub(crate) fn add(&mut self, o: &SignedHistogram) {
        add(&mut self.growth, &o.growth);
        add(&mut self.shrink, &o.shrink);
        self.zeros += o.zeros;
    }

    pub(crate) fn reset(&mut self) {
        reset(&mut self.growth);
        reset(&mut self.shrink);
        self.zeros = 0;
    }

    fn len(h: &Option<Histogram<u64>>) -> u64 {
        h.as_ref().map_or(0, Histogram::len)
    }

    /// The value at quantile `q`; `None` when nothing was recorded.
    pub(crate) fn quantile(&self, q: f64) -> Option<i64> {
        let (shrinks, growths) = (Self::len(&self.shrink), Self::len(&self.growth));
        let total = shrinks + self.zeros + growths;
        if total == 0 {
            return None;
        }
        // Ascending order: shrinks (largest magnitude first), zeros, growths.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        if rank <= shrinks {
            let within = 1.0 - (rank - 1) as f64 / shrinks as f64;
            return Some(-(quantile(&self.shrink, within) as i64));
        }
        if rank <= shrinks + self.zeros {
            return Some(0);
        }
        let within = (rank - shrinks - self.zeros) as f64 / growths as f64;
        Some(quantile(&self.growth, within) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_quantiles_order_shrinks_zeros_and_growths() {
        let mut h = SignedHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in [-3000, -1000, 0, 0, 500, 2000, 9000] {
            h.record(v);
        }
        let near = |got: Option<i64>, want: i64| {
            let got = got.unwrap();
            assert!(
                (got - want).abs() <= want.abs() / 100 + 1,
                "{got} vs {want}"
            );
        };
        near(h.quantile(0.0), -3000);
        near(h.quantile(0.1), -3000);
        near(h.quantile(0.2), -1000);
        assert_eq!(h.quantile(0.3), Some(0));
        assert_eq!(h.quantile(0.5), Some(0));
        near(h.quantile(0.65), 500);
        near(h.quantile(1.0), 9000);
        let mut only_shrinks = SignedHistogram::default();
        only_shrinks.record(-10);
        only_shrinks.record(-20);
        near(only_shrinks.quantile(1.0), -10);
    }

    /// The most one histogram takes: 31 buckets of 128 counts of 8 bytes.
    pub(crate) const MAX_BYTES: usize = 31 * 128 * 8;

    #[test]
    fn the_largest_value_fits_the_stated_size() {
        let mut h = None;
        record(&mut h, u64::MAX);
        record(&mut h, 1);
        let h = h.unwrap();
        assert!(
            h.distinct_values() * 8 <= MAX_BYTES,
            "{}",
            h.distinct_values()
        );
        assert_eq!(h.max(), h.highest_equivalent(MAX_VALUE));
    }
}
