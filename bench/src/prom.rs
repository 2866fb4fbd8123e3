//! Just enough of the Prometheus text format: the sum of a metric's samples whose labels match.

/// A sample: metric name, labels, value.
type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// Parses `name{a="x",b="y"} value` (or `name value`) into its name, labels and value.
fn parse_line(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.trim_end_matches('}')),
        None => (head.trim(), ""),
    };
    let mut out = Vec::new();
    // Label values of the metrics read here hold no commas or quotes.
    for pair in labels.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=')?;
        out.push((k.trim(), v.trim().trim_matches('"')));
    }
    Some((name, out, value))
}

/// The sum of the samples of `name` whose labels include every pair of `filter`.
pub fn sum(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(parse_line)
        .filter(|(n, labels, _)| *n == name && filter.iter().all(|f| labels.iter().any(|l| l == f)))
        .map(|(_, _, v)| v)
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// The samples of `name`, summed by the value of `label`.
pub fn by_label(text: &str, name: &str, label: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (n, labels, v) in text.lines().filter_map(parse_line) {
        if n != name {
            continue;
        }
        let key = labels
            .iter()
            .find(|(k, _)| *k == label)
            .map_or("", |(_, v)| *v);
        *out.entry(key.to_string()).or_insert(0.0) += v;
    }
    out
}

/// `after - before` per key, leaving out keys that did not change, as `key +delta, ...`.
pub fn delta(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> String {
    let parts: Vec<String> = after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| format!("{k} +{d}"))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_matching_samples() {
        let text = "# HELP x\ncovenant_writes_total{kind=\"Account\"} 3\ncovenant_writes_total{kind=\"Namespace\"} 4\ncovenant_writes_total_created 9\nup 1\n";
        assert_eq!(sum(text, "covenant_writes_total", &[]), 7.0);
        assert_eq!(
            sum(text, "covenant_writes_total", &[("kind", "Account")]),
            3.0
        );
        assert_eq!(sum(text, "up", &[]), 1.0);
        assert_eq!(sum(text, "missing", &[]), 0.0);
        assert!(sum(text, "missing", &[]).is_sign_positive());
        let by = by_label(text, "covenant_writes_total", "kind");
        assert_eq!(by.get("Namespace"), Some(&4.0));
        let mut before = by.clone();
        before.insert("Account".into(), 1.0);
        assert_eq!(delta(&before, &by), "Account +2");
    }
}
