//! Kubernetes resource quantities (`500m`, `1Gi`, `2e3`) as numbers: comparing what Covenant applied
//! with what the API server returns in canonical form, and ordering limits.

/// The value of a Kubernetes resource quantity (`500m`, `1Gi`, `2e3`), if `s` is one.
pub fn value(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(n * scale)
}

/// Whether `a` and `b` are the same quantity written differently (`0.5` and `500m`).
pub fn equal(a: &str, b: &str) -> bool {
    match (value(a), value(b)) {
        (Some(x), Some(y)) => x == y || ((x - y).abs() <= 1e-9 * x.abs().max(y.abs())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_by_value() {
        assert!(equal("0.5", "500m"));
        assert!(equal("1024Mi", "1Gi"));
        assert!(equal("2e3", "2k"));
        assert!(!equal("1G", "1Gi"));
        assert!(!equal("abc", "abc1"));
        assert_eq!(value("Gi"), None);
    }
}
