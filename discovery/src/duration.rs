//! Go's `time.ParseDuration` syntax (`60s`, `1m30s`, `500ms`, `1.5h`), which classic Swarm's
//! `--heartbeat`, `--ttl`, `--delay` and `--timeout` flags use, with Go's error texts.
use std::time::Duration;

/// A parsed duration with its sign (`--delay -1s` must be reported, not rejected as garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration {
    pub negative: bool,
    pub abs: Duration,
}

impl GoDuration {
    /// The duration, or `None` when negative.
    pub fn non_negative(self) -> Option<Duration> {
        (!self.negative || self.abs.is_zero()).then_some(self.abs)
    }
    /// Strictly positive.
    pub fn is_positive(self) -> bool {
        !self.negative && !self.abs.is_zero()
    }
}

/// Why a duration does not parse, in Go's words (`{0}` is the whole input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
}

/// Parses like Go: a sequence of decimal numbers each with a unit (ns, us, µs, ms, s, m, h),
/// optionally signed; `0` alone needs no unit.
pub fn parse(s: &str) -> Result<GoDuration, DurationError> {
    let orig = s;
    let invalid = || DurationError::Invalid(orig.to_string());
    let (negative, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Ok(GoDuration { negative: false, abs: Duration::ZERO });
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let num = &s[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        s = &s[num_len..];
        let unit_len = s.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(s.len());
        let unit = &s[..unit_len];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(orig.to_string()));
        }
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(DurationError::UnknownUnit { unit: unit.to_string(), input: orig.to_string() }),
        };
        total += value * nanos_per;
        s = &s[unit_len..];
    }
    if !total.is_finite() || total > (i64::MAX as f64) {
        return Err(invalid());
    }
    Ok(GoDuration { negative, abs: Duration::from_nanos(total as u64) })
}

/// Formats like Go's `Duration.String()` for the common cases (`1m0s`, `1.5s`, `500ms`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if d.is_zero() {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (h, rem) = ((secs / 3600.0).floor(), secs % 3600.0);
    let (m, s) = ((rem / 60.0).floor(), rem % 60.0);
    let s = if s.fract() == 0.0 { format!("{s:.0}s") } else { format!("{}s", (s * 1000.0).round() / 1000.0) };
    match (h as u64, m as u64) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn d(s: &str) -> Duration {
        parse(s).unwrap().abs
    }
    #[test]
    fn parses_go_durations() {
        assert_eq!(d("60s"), Duration::from_secs(60));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("0"), Duration::ZERO);
        assert!(parse("-1s").unwrap().negative);
        assert!(parse("-1s").unwrap().non_negative().is_none());
        assert_eq!(parse("10").unwrap_err().to_string(), "time: missing unit in duration \"10\"");
        assert_eq!(parse("10x").unwrap_err().to_string(), "time: unknown unit \"x\" in duration \"10x\"");
        assert_eq!(parse("abc").unwrap_err(), DurationError::Invalid("abc".into()));
        assert_eq!(parse("abc").unwrap_err().to_string(), "time: invalid duration \"abc\"");
        assert!(parse("").is_err() && parse("s").is_err() && parse("1..2s").is_err());
    }
    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(60)), "1m0s");
        assert_eq!(format(Duration::from_secs(3)), "3s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(20)), "20ms");
        assert_eq!(format(Duration::from_secs(3661)), "1h1m1s");
    }
}
