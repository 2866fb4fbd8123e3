//! The calendar of obligations: every instant still to come that will change something for a tenant
//! — rejection deadlines, effective instants, access reviews due, suspensions that start or end,
//! retention purges — sorted, with the accounts each one touches; as text or as an iCalendar file
//! (RFC 5545) a platform team subscribes to.
//!
//! Computed from objects with their status: the cluster's (as the operator wrote it) or the ones
//! `covenant check` computes from files.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use crate::api::{
    ACCOUNT_LABEL, Account, Decision, DeprecationNotice, RETAINED_UNTIL_LABEL, Suspension,
};

/// What happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum What {
    /// The last instant an account may reject an amendment; silence is acceptance from then on.
    RejectionDeadline,
    /// A notice takes effect.
    Effective,
    /// An account's monthly access review is due (§4.2(2)).
    AccessReviewDue,
    /// A scheduled suspension starts.
    SuspensionStarts,
    /// A suspension ends (its endAt).
    SuspensionEnds,
    /// A retained namespace is deleted (§6).
    RetentionPurge,
}

impl What {
    /// A short name (`rejection-deadline`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            What::RejectionDeadline => "rejection-deadline",
            What::Effective => "effective",
            What::AccessReviewDue => "access-review-due",
            What::SuspensionStarts => "suspension-starts",
            What::SuspensionEnds => "suspension-ends",
            What::RetentionPurge => "retention-purge",
        }
    }
}

/// One instant of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When.
    pub at: Timestamp,
    /// What happens.
    pub what: What,
    /// The object that sets it (`DeprecationNotice/dpa`, `Account/acme`, `Namespace/acme`, ...).
    pub object: String,
    /// The accounts it touches (sorted).
    pub accounts: Vec<String>,
    /// A sentence for people.
    pub summary: String,
}

/// The objects a timeline is computed from.
#[derive(Default)]
pub struct Objects {
    /// Accounts with their status.
    pub accounts: Vec<Account>,
    /// Notices with their status.
    pub notices: Vec<DeprecationNotice>,
    /// Suspensions.
    pub suspensions: Vec<Suspension>,
    /// Namespaces labelled by Covenant (the retained ones carry their purge instant).
    pub namespaces: Vec<Namespace>,
}

impl Objects {
    /// The Covenant objects among `values` (as `covenant check` prints them); other kinds are ignored.
    pub fn from_values(values: &[serde_json::Value]) -> Self {
        let mut o = Objects::default();
        for v in values {
            let kind = v.get("kind").and_then(serde_json::Value::as_str);
            let _ = match kind {
                Some("Account") => serde_json::from_value(v.clone()).map(|a| o.accounts.push(a)),
                Some("DeprecationNotice") => {
                    serde_json::from_value(v.clone()).map(|n| o.notices.push(n))
                }
                Some("Suspension") => {
                    serde_json::from_value(v.clone()).map(|s| o.suspensions.push(s))
                }
                Some("Namespace") => {
                    serde_json::from_value(v.clone()).map(|n| o.namespaces.push(n))
                }
                _ => Ok(()),
            };
        }
        o
    }
}

/// Reads the objects from the cluster of `client` (the Covenant kinds and the labelled namespaces).
pub async fn from_cluster(client: &kube::Client) -> Result<Objects, kube::Error> {
    use kube::Api;
    use kube::api::ListParams;
    let all = ListParams::default();
    Ok(Objects {
        accounts: Api::<Account>::all(client.clone()).list(&all).await?.items,
        notices: Api::<DeprecationNotice>::all(client.clone())
            .list(&all)
            .await?
            .items,
        suspensions: Api::<Suspension>::all(client.clone())
            .list(&all)
            .await?
            .items,
        namespaces: Api::<Namespace>::all(client.clone())
            .list(&ListParams::default().labels(ACCOUNT_LABEL))
            .await?
            .items,
    })
}

/// Every instant after `now` at which something changes, sorted by instant (then by what and
/// object).
pub fn timeline(objects: &Objects, now: Timestamp) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut push = |at: Timestamp, what: What, object: String, accounts: Vec<String>, summary| {
        if at > now {
            let mut accounts = accounts;
            accounts.sort();
            accounts.dedup();
            out.push(Entry {
                at,
                what,
                object,
                accounts,
                summary,
            });
        }
    };
    // Which accounts a notice touches, and how each stands: from the Accounts' own rows
    // (`status.notices`); the notice holds only the counts.
    let mut rows: BTreeMap<&str, Vec<(String, Decision)>> = BTreeMap::new();
    for a in &objects.accounts {
        for r in a.status.iter().flat_map(|s| &s.notices) {
            rows.entry(r.name.as_str())
                .or_default()
                .push((a.name_any(), r.decision));
        }
    }
    for n in &objects.notices {
        let Some(st) = &n.status else { continue };
        let name = n.name_any();
        let object = format!("DeprecationNotice/{name}");
        let listed = rows
            .get(name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let all: Vec<String> = listed.iter().map(|(a, _)| a.clone()).collect();
        if let Some(d) = &st.rejection_deadline {
            let pending: Vec<String> = listed
                .iter()
                .filter(|(_, d)| *d == Decision::Pending)
                .map(|(a, _)| a.clone())
                .collect();
            // The count is the notice's own (every selected account, read or not); the names are
            // those of the Accounts read.
            let silent = st
                .counts
                .as_ref()
                .map_or(pending.len(), |c| usize::try_from(c.pending).unwrap_or(0));
            if silent > 0 {
                let summary = format!(
                    "Last instant to reject {name} ({}); {silent} account(s) silent until then are deemed to accept",
                    n.spec.summary,
                );
                push(
                    d.0,
                    What::RejectionDeadline,
                    object.clone(),
                    pending,
                    summary,
                );
            }
        }
        if let Some(e) = &st.enforced_effective_at {
            let summary = format!(
                "{} {name} takes effect: {}",
                serde_json::to_value(n.spec.notice_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                n.spec.summary
            );
            push(e.0, What::Effective, object, all, summary);
        }
    }
    for a in &objects.accounts {
        let name = a.name_any();
        if let Some(due) = a
            .status
            .as_ref()
            .and_then(|s| s.access_review_due_at.as_ref())
        {
            push(
                due.0,
                What::AccessReviewDue,
                format!("Account/{name}"),
                vec![name.clone()],
                format!("Monthly access review of {name} due (§4.2(2))"),
            );
        }
    }
    for s in &objects.suspensions {
        let name = s.name_any();
        let account = s.spec.account.clone();
        if let Some(start) = &s.spec.start_at {
            push(
                start.0,
                What::SuspensionStarts,
                format!("Suspension/{name}"),
                vec![account.clone()],
                format!("{account} is suspended ({:?})", s.spec.reason),
            );
        }
        if let Some(end) = &s.spec.end_at {
            push(
                end.0,
                What::SuspensionEnds,
                format!("Suspension/{name}"),
                vec![account.clone()],
                format!("The suspension of {account} ends"),
            );
        }
    }
    for ns in &objects.namespaces {
        let labels = ns.labels();
        let until = labels
            .get(RETAINED_UNTIL_LABEL)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| Timestamp::from_second(v).ok());
        if let Some(until) = until {
            let account = labels.get(ACCOUNT_LABEL).cloned().unwrap_or_default();
            let name = ns.name_any();
            push(
                until,
                What::RetentionPurge,
                format!("Namespace/{name}"),
                vec![account.clone()],
                format!("Retained namespace {name} of deleted account {account} is deleted (§6)"),
            );
        }
    }
    out.sort_by(|a, b| (a.at, a.what, &a.object).cmp(&(b.at, b.what, &b.object)));
    out
}

/// The timeline as a table.
pub fn render_text(entries: &[Entry]) -> String {
    let width = entries
        .iter()
        .map(|e| e.object.len())
        .max()
        .unwrap_or(0)
        .max("OBJECT".len());
    let mut out = format!(
        "{:<21} {:<19} {:<width$} ACCOUNTS\n",
        "WHEN", "WHAT", "OBJECT"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:<21} {:<19} {:<width$} {}",
            covenant_terms::fmt_instant(e.at),
            e.what.as_str(),
            e.object,
            e.accounts.join(",")
        );
    }
    out
}

/// The timeline as an iCalendar (RFC 5545) calendar: one event per entry, at its instant, with a
/// stable UID (what, object and instant) so a subscribed calendar updates rather than duplicates.
pub fn render_ics(entries: &[Entry], now: Timestamp) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//covenant.dev//Covenant timeline//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        "X-WR-CALNAME:Covenant obligations".to_string(),
    ];
    let stamp = ics_time(now);
    // Several entries can share what, object and instant only when they are the same entry.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        let base = format!(
            "{}-{}-{}@covenant.dev",
            e.what.as_str(),
            e.object.replace('/', "-").to_lowercase(),
            e.at.as_second()
        );
        let n = seen.entry(base.clone()).or_default();
        *n += 1;
        let uid = if *n == 1 { base } else { format!("{n}-{base}") };
        let description = format!(
            "{}\nAccounts: {}\nObject: {}",
            e.summary,
            if e.accounts.is_empty() {
                "none".to_string()
            } else {
                e.accounts.join(", ")
            },
            e.object
        );
        lines.extend([
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}", escape(&uid)),
            format!("DTSTAMP:{stamp}"),
            format!("DTSTART:{}", ics_time(e.at)),
            format!("DTEND:{}", ics_time(e.at)),
            format!(
                "SUMMARY:{}",
                escape(&format!("{}: {}", e.what.as_str(), e.object))
            ),
            format!("DESCRIPTION:{}", escape(&description)),
            format!("CATEGORIES:{}", escape(e.what.as_str())),
            "TRANSP:TRANSPARENT".to_string(),
            "END:VEVENT".to_string(),
        ]);
    }
    lines.push("END:VCALENDAR".to_string());
    lines.iter().map(|l| fold(l)).collect()
}

/// An instant in iCalendar's UTC form (`20261225T000000Z`); sub-seconds are dropped.
fn ics_time(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT escaping (RFC 5545 §3.3.11).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A content line folded at 75 octets (never inside a UTF-8 character), ended with CRLF
/// (RFC 5545 §3.1).
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        // The first line holds 75 octets; each continuation starts with a space, so 74 more.
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let line = format!("DESCRIPTION:{}", "é".repeat(100));
        let folded = fold(&line);
        for l in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l:?}", l.len());
        }
        let unfolded = folded.trim_end_matches("\r\n").replace("\r\n ", "");
        assert_eq!(unfolded, line);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
