//! `covenant timeline` on the shipped examples: the instants still to come, and the iCalendar file a
//! platform team subscribes to, read back by an independent iCalendar parser (the `ical` crate).

use std::path::{Path, PathBuf};

use covenant::check;
use covenant::timeline::{self, Objects, What};
use ical::parser::ical::component::IcalEvent;

const NOW: &str = "2026-11-28T12:00:00Z";

fn examples() -> Vec<String> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

fn entries() -> Vec<timeline::Entry> {
    let mut report = check::Report::default();
    let docs = check::read_docs(&examples(), &mut report);
    check::check(docs, NOW.parse().unwrap(), &mut report);
    timeline::timeline(&Objects::from_values(&report.objects), NOW.parse().unwrap())
}

fn prop<'a>(e: &'a IcalEvent, name: &str) -> Option<&'a str> {
    e.properties
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.value.as_deref())
}

#[test]
fn the_examples_timeline_lists_what_is_coming_in_order() {
    let entries = entries();
    assert!(!entries.is_empty());
    assert!(entries.windows(2).all(|w| w[0].at <= w[1].at), "sorted");
    let now: jiff::Timestamp = NOW.parse().unwrap();
    assert!(
        entries.iter().all(|e| e.at > now),
        "only what is still to come"
    );
    // The amendment of examples/notices.yaml: served 2026-11-25 for 2026-12-25, rejectable until then.
    let deadline = entries
        .iter()
        .find(|e| {
            e.what == What::RejectionDeadline
                && e.object == "DeprecationNotice/data-processing-addendum-2027"
        })
        .expect("the amendment's rejection deadline");
    assert_eq!(deadline.at, "2026-12-25T00:00:00Z".parse().unwrap());
    assert!(
        deadline.accounts.contains(&"acme".to_string()),
        "{deadline:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.what == What::AccessReviewDue && e.object == "Account/acme")
    );
}

#[test]
fn the_ics_file_is_read_back_by_an_icalendar_parser() {
    let entries = entries();
    let ics = timeline::render_ics(&entries, NOW.parse().unwrap());
    assert!(
        ics.lines().all(|l| l.len() <= 76),
        "folded at 75 octets (plus CR)"
    );
    assert!(
        ics.split("\r\n").all(|l| !l.contains('\n')),
        "CRLF line ends"
    );
    let mut parser = ical::IcalParser::new(ics.as_bytes());
    let calendar = parser
        .next()
        .expect("one calendar")
        .expect("a calendar the parser accepts");
    assert!(parser.next().is_none(), "exactly one calendar");
    assert_eq!(calendar.events.len(), entries.len());
    let mut uids = std::collections::BTreeSet::new();
    for (event, entry) in calendar.events.iter().zip(&entries) {
        let start = prop(event, "DTSTART").expect("DTSTART");
        assert_eq!(start, entry.at.strftime("%Y%m%dT%H%M%SZ").to_string());
        let summary = prop(event, "SUMMARY").expect("SUMMARY");
        assert_eq!(
            summary,
            format!("{}: {}", entry.what.as_str(), entry.object)
        );
        let description = prop(event, "DESCRIPTION").expect("DESCRIPTION");
        for a in &entry.accounts {
            assert!(description.contains(a.as_str()), "{description}");
        }
        assert!(
            uids.insert(prop(event, "UID").expect("UID").to_string()),
            "UIDs are unique"
        );
    }
    // The same input gives the same UIDs: a subscribed calendar updates its events.
    let again = timeline::render_ics(&entries, "2026-11-29T00:00:00Z".parse().unwrap());
    let uid_lines = |s: &str| {
        s.replace("\r\n ", "")
            .lines()
            .filter(|l| l.starts_with("UID:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(uid_lines(&ics), uid_lines(&again));
}
