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

#[cfg(test)]
mod tests {
    use super::*;

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
