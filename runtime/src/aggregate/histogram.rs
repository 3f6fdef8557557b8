//! Percentile histograms with a fixed upper size.
//!
//! Log-linear buckets with HdrHistogram's layout at two significant digits:
//! values below 256 each have a bucket, and each power of two above has 128
//! buckets, so a percentile is within 1% (1/128) of the value recorded.
//! Counts grow on demand as larger values arrive but never past
//! [`MAX_VALUE`]: a value above it is recorded as `MAX_VALUE`, so no
//! histogram holds more than 31 groups of 128 counts: 31 KiB. Recording is
//! a shift, a mask and two adds (the drain records two or four values per
//! call, so this is on the per-call cost); the test module checks the
//! percentiles against the hdrhistogram crate's. Sums and maxima are kept
//! exactly elsewhere.

/// Bits of a value kept below its leading one: 128 buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Largest value a histogram resolves: 2^36 ns is 68.7 s (or 64 GiB for
/// byte counts).
pub(crate) const MAX_VALUE: u64 = 1 << 36;

/// Counts per bucket, the buckets of [`index_of`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

/// The bucket of `value`: the value itself below 256, then 128 buckets per
/// power of two.
#[inline]
fn index_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let shift = 63 - value.leading_zeros() - SUB_BITS;
    ((u64::from(shift + 1) << SUB_BITS) | ((value >> shift) & (SUB - 1))) as usize
}

/// The lowest and the highest value that fall in bucket `index`: a
/// percentile reports the highest, as HdrHistogram does (the 0th, the
/// lowest).
fn bounds_of(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, index);
    }
    let shift = (index >> SUB_BITS) - 1;
    let low = (SUB | (index & (SUB - 1))) << shift;
    (low, low + (1 << shift) - 1)
}

impl Histogram {
    /// Calls recorded.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    #[cold]
    fn grow(&mut self, index: usize) {
        // Whole powers of two at a time, as far as MAX_VALUE's bucket.
        let groups = (index >> SUB_BITS) + 1;
        self.counts.resize(groups << SUB_BITS, 0);
    }

    fn value_at_quantile(&self, q: f64) -> u64 {
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds_of(index);
                return if q <= 0.0 { low } else { high };
            }
        }
        0
    }
}

/// Records `value` (clamped to [`MAX_VALUE`]) into `histogram`, creating it
/// on first use.
#[inline]
pub(crate) fn record(histogram: &mut Option<Histogram>, value: u64) {
    let h = histogram.get_or_insert_with(Histogram::default);
    let index = index_of(value.min(MAX_VALUE));
    if index >= h.counts.len() {
        h.grow(index);
    }
    h.counts[index] += 1;
    h.total += 1;
}

/// Adds `source` into `target`.
pub(crate) fn add(target: &mut Option<Histogram>, source: &Option<Histogram>) {
    if let Some(source) = source {
        match target {
            Some(t) => {
                if t.counts.len() < source.counts.len() {
                    t.counts.resize(source.counts.len(), 0);
                }
                for (t, s) in t.counts.iter_mut().zip(&source.counts) {
                    *t += s;
                }
                t.total += source.total;
            }
            None => *target = Some(source.clone()),
        }
    }
}

/// The value at quantile `q`, 0 when nothing was recorded.
pub(crate) fn quantile(h: &Option<Histogram>, q: f64) -> u64 {
    h.as_ref().map_or(0, |h| h.value_at_quantile(q))
}

/// Empties `h`, keeping its memory.
pub(crate) fn reset(h: &mut Option<Histogram>) {
    if let Some(h) = h {
        h.counts.fill(0);
        h.total = 0;
    }
}

/// Percentiles of a signed value (a call's net memory change): growths
/// and shrinks in two histograms of magnitudes, zeros counted apart.
#[derive(Clone, Debug, Default)]
pub(crate) struct SignedHistogram {
    growth: Option<Histogram>,
    shrink: Option<Histogram>,
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

    fn len(h: &Option<Histogram>) -> u64 {
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

    /// The most one histogram takes: 31 groups of 128 counts of 8 bytes.
    pub(crate) const MAX_BYTES: usize = 31 * 128 * 8;

    #[test]
    fn the_largest_value_fits_the_stated_size() {
        let mut h = None;
        record(&mut h, u64::MAX);
        record(&mut h, 1);
        let h = h.unwrap();
        assert!(h.counts.len() * 8 <= MAX_BYTES, "{}", h.counts.len());
        assert_eq!(h.value_at_quantile(1.0), bounds_of(index_of(MAX_VALUE)).1);
        assert_eq!(h.value_at_quantile(0.0), 1);
    }

    #[test]
    fn buckets_are_contiguous_and_within_one_percent() {
        let mut previous = None;
        for value in (0..4096).chain((12..37).flat_map(|e| [(1u64 << e) - 1, 1 << e, (1 << e) + 1]))
        {
            let index = index_of(value);
            let (low, high) = (value, bounds_of(index).1);
            assert!(high >= low, "{value}: bucket {index} ends at {high}");
            assert!(
                (high - low) as f64 <= low as f64 / 128.0,
                "{value}: bucket {index} ends at {high}, more than 1/128 above"
            );
            if value < 4096 {
                if let Some(p) = previous {
                    assert!(index == p || index == p + 1, "{value}: {p} then {index}");
                }
                previous = Some(index);
            }
        }
        assert_eq!(index_of(255), 255);
        assert_eq!(index_of(256), 256);
        assert_eq!(bounds_of(256), (256, 257));
    }

    /// Percentiles match the hdrhistogram crate's at two significant digits
    /// (the layout this one shares), over values spread across every power
    /// of two up to MAX_VALUE, merged from two histograms as rows are.
    #[test]
    fn percentiles_match_hdrhistogram() {
        let mut reference = hdrhistogram::Histogram::<u64>::new(2).unwrap();
        let (mut first, mut second) = (None, None);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..50_000 {
            // xorshift: deterministic, spread over 0..2^36.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = (state >> (state % 40)) % (MAX_VALUE + 1);
            reference.record(value).unwrap();
            record(if i % 3 == 0 { &mut first } else { &mut second }, value);
        }
        add(&mut first, &second);
        for q in [0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                quantile(&first, q),
                reference.value_at_quantile(q),
                "quantile {q}"
            );
        }
        assert_eq!(first.as_ref().unwrap().len(), reference.len());
    }
}
