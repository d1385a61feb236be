//! Human-readable units for terminal output, and the status lines commands
//! print on stderr.

/// Prints a status line (what was written where) on stderr, unless `-q`
/// asked for errors only.
pub fn status(line: impl std::fmt::Display) {
    if tracing::level_filters::LevelFilter::current() >= tracing::level_filters::LevelFilter::WARN {
        eprintln!("{line}");
    }
}

/// Bytes with a binary-prefixed unit: `1.00 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Microseconds with a readable unit: `850 µs`, `12.35 ms`, `3.20 s`.
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// Nanoseconds with a readable unit: `850 ns`, `64.44 µs`, `12.35 ms`, `3.20 s`.
pub fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.2} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// A wall-clock duration with a readable unit, as [`nanos`].
pub fn elapsed(d: std::time::Duration) -> String {
    nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An integer with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1 << 20), "1.00 MiB");
        assert_eq!(micros(999), "999 µs");
        assert_eq!(micros(12_345), "12.35 ms");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(nanos(850), "850 ns");
        assert_eq!(nanos(64_440), "64.44 µs");
        assert_eq!(nanos(1_972_365), "1.97 ms");
        assert_eq!(nanos(306_896_000_000), "306.90 s");
    }
}
