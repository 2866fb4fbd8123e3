//! Kubernetes resource quantities (`500m`, `1Gi`, `2e3`) as numbers: comparing what Covenant applied
//! with what the API server returns in canonical form, and ordering limits.

/// A quantity (`500m`, `1Gi`, `2e3`) split into its number (digits, a point, a sign) and the scale
/// its suffix gives it: a power of ten and a power of 1024. `None` for an unknown suffix.
fn split(s: &str) -> Option<(&str, i32, i32)> {
    let at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(at);
    let scale = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        e if e.starts_with(['e', 'E']) => (e[1..].parse().ok()?, 0),
        _ => return None,
    };
    Some((number, scale.0, scale.1))
}

/// The value of a Kubernetes resource quantity (`500m`, `1Gi`, `2e3`), if `s` is one.
pub fn value(s: &str) -> Option<f64> {
    let (number, ten, binary) = split(s.trim())?;
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    // The number and its power of ten read as one decimal (`500e-3`): one rounding.
    let n: f64 = format!("{number}e{ten}").parse().ok()?;
    Some(n * 1024f64.powi(binary))
}

/// Whether `a` and `b` are the same quantity written differently (`0.5` and `500m`).
pub fn equal(a: &str, b: &str) -> bool {
    match (value(a), value(b)) {
        (Some(x), Some(y)) => x == y || ((x - y).abs() <= 1e-9 * x.abs().max(y.abs())),
        _ => false,
    }
}

/// The canonical form of a Kubernetes resource quantity, if `s` is one: `<integer>e<exponent>` with no
/// trailing zero in the integer, exact (no floating point), so that every spelling of one value has one
/// form (`0.5`, `500m` and `5e-1` are all `5e-1`; `1Gi` and `1024Mi` are `1073741824e0`; `1G` is
/// `1e9`). `None` when `s` is not a quantity or is too large to write exactly.
pub fn canonical(s: &str) -> Option<String> {
    let (number, ten, binary) = split(s)?;
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(c.to_digit(10)? as u8))?;
    }
    mantissa = mantissa.checked_mul(1024i128.checked_pow(u32::try_from(binary).ok()?)?)?;
    let mut exponent = ten.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    if mantissa == 0 {
        return Some("0e0".to_string());
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exponent = exponent.checked_add(1)?;
    }
    let sign = if negative { "-" } else { "" };
    Some(format!("{sign}{mantissa}e{exponent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of one value has one canonical form, and different values have different ones.
    #[test]
    fn a_quantity_has_one_canonical_form() {
        for same in [
            ["0.5", "500m", "5e-1"],
            ["1Gi", "1024Mi", "1073741824"],
            ["2k", "2000", "2e3"],
            ["0", "0m", "0Gi"],
            ["1.50", "1.5", "1500m"],
        ] {
            let forms: Vec<_> = same.iter().map(|s| canonical(s)).collect();
            assert!(forms[0].is_some(), "{same:?}");
            assert!(forms.iter().all(|f| *f == forms[0]), "{same:?}: {forms:?}");
        }
        assert_eq!(canonical("500m").as_deref(), Some("5e-1"));
        assert_eq!(canonical("1G").as_deref(), Some("1e9"));
        assert_ne!(canonical("1G"), canonical("1Gi"));
        assert_ne!(canonical("20"), canonical("21"));
        assert_eq!(canonical("-1").as_deref(), Some("-1e0"));
        for not in ["", "Gi", "abc", "1.2.3", "1x", "e5", ".", "1e", "covenant"] {
            assert_eq!(canonical(not), None, "{not}");
        }
    }

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
