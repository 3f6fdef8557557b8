//! `--fail-on` thresholds: `cpu_p50>+10%`, `wall_p99>+25%`, `calls<-50%`.

use crate::figures::Metric;

/// A change that fails the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    /// `>`: fails on a change above `percent`; `<`: below it.
    pub above: bool,
    pub percent: f64,
    text: String,
}

impl Threshold {
    /// Parses `METRIC>+N%` or `METRIC<-N%`; an error names the part that
    /// did not parse.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let bad = |what: String| format!("threshold {text:?}: {what}");
        let at = text
            .find(['>', '<'])
            .ok_or_else(|| bad("no `>` or `<` (e.g. cpu_p50>+10%)".to_owned()))?;
        let (name, rest) = (text[..at].trim(), &text[at..]);
        let metric = Metric::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            bad(format!(
                "unknown metric {name:?} (known: {})",
                known.join(", ")
            ))
        })?;
        let above = rest.starts_with('>');
        let number = rest[1..].trim();
        let number = number
            .strip_suffix('%')
            .ok_or_else(|| bad(format!("{number:?} is not a percentage (e.g. +10%)")))?;
        let percent: f64 = number
            .parse()
            .ok()
            .filter(|p: &f64| p.is_finite())
            .ok_or_else(|| bad(format!("{number:?} is not a number")))?;
        Ok(Threshold {
            metric,
            above,
            percent,
            text: text.trim().to_owned(),
        })
    }

    /// Whether a change of `percent` crosses it.
    pub fn crossed_by(&self, percent: f64) -> bool {
        if self.above {
            percent > self.percent
        } else {
            percent < self.percent
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_errors_name_the_bad_part() {
        let t = Threshold::parse("cpu_p50>+10%").unwrap();
        assert_eq!((t.metric, t.above, t.percent), (Metric::CpuP50, true, 10.0));
        assert!(t.crossed_by(10.5) && !t.crossed_by(9.0));
        let t = Threshold::parse(" calls < -50% ").unwrap();
        assert_eq!(
            (t.metric, t.above, t.percent),
            (Metric::Calls, false, -50.0)
        );
        assert!(t.crossed_by(-60.0) && !t.crossed_by(-10.0));
        for (text, names) in [
            ("cpu_p5>+10%", "\"cpu_p5\""),
            ("cpu_p50=10%", "no `>` or `<`"),
            ("cpu_p50>+10", "\"+10\" is not a percentage"),
            ("cpu_p50>ten%", "\"ten\" is not a number"),
            ("wall_p99>inf%", "\"inf\" is not a number"),
        ] {
            let e = Threshold::parse(text).unwrap_err();
            assert!(e.contains(names), "{text}: {e}");
        }
    }
}
