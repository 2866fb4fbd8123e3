//! DeprecationNotices end to end (preamble, §2.1–§2.3), with the operator running: an amendment's
//! rejection deadline and deemed acceptance at the exact instant, a discontinuation whose window is too
//! short, an exempt notice, `servedAt` recorded once and never moved (re-apply, restart, the CEL rule),
//! and what the selected accounts see when the selection changes or the notice goes.
//!
//! Every notice selects accounts by a label unique to its test (never the empty selector, which would
//! select every account on the shared cluster). The restart test takes [`OPERATOR`] for writing, so no
//! other test of this binary is waiting on the operator while it is down, and so does the narrowed
//! selector test, which other tests' notice deletions would mask; every other test takes it for
//! reading (they run in parallel with each other).

use std::time::Duration;

use covenant::api::{Account, AccountNoticeStatus, Decision, DecisionCounts, DeprecationNotice};
use covenant_e2e::fixtures::{self, api_error};
use covenant_e2e::timing::{rfc3339, secs, until_plus_30s, watch_until};
use covenant_e2e::{
    TIMEOUT, TestCtx, condition, eventually, kubectl_stdin, operator, wait_account_ready, wait_for,
    wait_gone,
};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The restart test (and the one that must not see other tests' side effects) holds it for writing,
/// every other test for reading.
static OPERATOR: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const NOTICES: &str = "deprecationnotices.covenant.dev";
/// The label by which each test's notices select its accounts.
const GROUP: &str = "e2e-notice-group";
const DAY: i64 = 24 * 60 * 60;

fn at_second(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("a valid instant")
}

/// Now, truncated to whole seconds.
fn now_s() -> Timestamp {
    at_second(Timestamp::now().as_second())
}

fn plus_months(ts: Timestamp, months: i64) -> Timestamp {
    ts.to_zoned(TimeZone::UTC)
        .checked_add(Span::new().months(months))
        .expect("a valid date")
        .timestamp()
}

/// A package for the test's accounts (named explicitly in each).
async fn package(t: &TestCtx) -> String {
    let pkg = t.package("pkg");
    t.apply(&fixtures::package(&pkg, fixtures::default_quota()))
        .await;
    pkg
}

/// An Account `base-<suffix>` on `pkg` with `labels` and `extra` merged into its spec, Ready.
async fn labelled_account(
    t: &TestCtx,
    base: &str,
    pkg: &str,
    labels: Value,
    extra: Value,
) -> String {
    let name = t.account(base);
    t.apply(&fixtures::labelled_account(
        &name,
        labels,
        Some(pkg),
        &format!("alice-{}", t.suffix),
        extra,
    ))
    .await;
    wait_account_ready(&t.client, &name).await;
    name
}

/// A DeprecationNotice manifest with `spec`.
fn notice_yaml(name: &str, spec: Value) -> String {
    json!({
        "apiVersion": "covenant.dev/v1alpha1",
        "kind": "DeprecationNotice",
        "metadata": { "name": name },
        "spec": spec
    })
    .to_string()
}

/// A selector for the accounts labelled `GROUP=group`.
fn selecting(group: &str) -> Value {
    json!({ "matchLabels": { GROUP: group } })
}

fn ncond<'a>(n: &'a DeprecationNotice, type_: &str) -> Option<&'a Condition> {
    n.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn cond_is(c: Option<&Condition>, status: &str, reason: &str) -> bool {
    c.is_some_and(|c| c.status == status && c.reason == reason)
}

/// The notice's current status was computed for its current generation.
fn observed(n: &DeprecationNotice) -> bool {
    n.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some() && s.observed_generation == n.metadata.generation
    })
}

/// The notice's counts per decision (it has no row per account: each account's decision is on the
/// Account).
fn counted(n: &DeprecationNotice) -> Option<DecisionCounts> {
    n.status.as_ref().and_then(|s| s.counts.clone())
}

/// The account's row for `notice` in `status.notices`.
fn row<'a>(a: &'a Account, notice: &str) -> Option<&'a AccountNoticeStatus> {
    a.status.as_ref()?.notices.iter().find(|r| r.name == notice)
}

fn counts(pending: u32, accepted: u32, deemed_accepted: u32, rejected: u32) -> DecisionCounts {
    // Through JSON: the API's field types are not this test's concern.
    serde_json::from_value(json!({
        "pending": pending,
        "accepted": accepted,
        "deemedAccepted": deemed_accepted,
        "rejected": rejected
    }))
    .expect("DecisionCounts")
}

fn time_of(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

#[tokio::test]
async fn an_amendment_is_deemed_accepted_at_its_deadline_unless_rejected() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("amendment").await;
    let pkg = package(&t).await;
    let group = t.name("amend");
    let notice = t.name("dpa");
    t.track(NOTICES, &notice);
    let silent = labelled_account(&t, "silent", &pkg, json!({ GROUP: group }), json!({})).await;
    let rejecter = labelled_account(
        &t,
        "rejecter",
        &pkg,
        json!({ GROUP: group }),
        json!({ "noticeResponses": [
            { "notice": notice, "decision": "Reject", "at": rfc3339(now_s()) }
        ] }),
    )
    .await;

    // Served 30 days minus 12 s ago, effective exactly 30 days after service: 12 s from now. The
    // rejection deadline, max(servedAt + 30 days, effectiveAt), is the same instant.
    let instant = at_second(Timestamp::now().as_second() + 12);
    let served = at_second(instant.as_second() - 30 * DAY);
    t.apply(&notice_yaml(
        &notice,
        json!({
            "type": "Amendment",
            "summary": "The Data Processing Addendum adds new sub-processors.",
            "url": "https://platform.example/terms/dpa",
            "servedAt": rfc3339(served),
            "effectiveAt": rfc3339(instant),
            "accounts": selecting(&group)
        }),
    ))
    .await;

    // Before the instant.
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let (n, seen) = watch_until(
        &notices,
        &notice,
        "count both accounts, one Rejected and one Pending, not yet Effective",
        TIMEOUT,
        |n| {
            observed(n)
                && counted(n) == Some(counts(1, 0, 0, 1))
                && cond_is(ncond(n, "Effective"), "False", "Pending")
        },
    )
    .await;
    assert!(
        seen < instant,
        "the notice's status before the instant was seen only at {seen} (instant {instant})"
    );
    let st = n.status.as_ref().unwrap();
    assert_eq!(time_of(&st.served_at), Some(served), "status.servedAt");
    assert_eq!(
        time_of(&st.enforced_effective_at),
        Some(instant),
        "status.enforcedEffectiveAt"
    );
    assert_eq!(
        time_of(&st.rejection_deadline),
        Some(instant),
        "status.rejectionDeadline = max(servedAt + 30 days, effectiveAt)"
    );
    assert_eq!(
        st.counts,
        Some(counts(1, 0, 0, 1)),
        "counts before the instant"
    );
    assert!(
        cond_is(ncond(&n, "NoticeWindowSatisfied"), "True", "Satisfied"),
        "exactly 30 days' notice satisfies the window: {:?}",
        ncond(&n, "NoticeWindowSatisfied")
    );
    assert_the_accounts_view_before_the_instant(&t, &notice, &silent, &rejecter, instant).await;
    assert_at_the_instant_silence_is_acceptance_and_the_rejection_stays(
        &t, &notice, &silent, &rejecter, instant,
    )
    .await;
}

/// The accounts' view before the instant: the rejecter Rejected, the silent account Pending, both
/// with TermsCurrent=False and the deadline, seen before it; the rejection in time is honoured.
async fn assert_the_accounts_view_before_the_instant(
    t: &TestCtx,
    notice: &str,
    silent: &str,
    rejecter: &str,
    instant: Timestamp,
) {
    let accounts: Api<Account> = Api::all(t.client.clone());
    // The accounts' view before the instant.
    let before = |decision: Decision, reason: &'static str| {
        let notice = notice.to_string();
        move |a: &Account| {
            row(a, &notice).is_some_and(|r| {
                r.decision == decision
                    && r.rejection_deadline.as_ref().map(|t| t.0) == Some(instant)
                    && r.effective_at.0 == instant
            }) && condition(a, "TermsCurrent")
                .is_some_and(|c| c.status == "False" && c.reason == reason)
        }
    };
    let (r, r_seen) = watch_until(
        &accounts,
        rejecter,
        "list the notice as Rejected with TermsCurrent=False NoticeRejected",
        TIMEOUT,
        before(Decision::Rejected, "NoticeRejected"),
    )
    .await;
    let (_, s_seen) = watch_until(
        &accounts,
        silent,
        "list the notice as Pending with TermsCurrent=False NoticePending",
        TIMEOUT,
        before(Decision::Pending, "NoticePending"),
    )
    .await;
    assert!(
        s_seen < instant && r_seen < instant,
        "the accounts' status before the instant was seen only at {s_seen} / {r_seen} (instant {instant})"
    );
    assert!(
        row(&r, notice).unwrap().message.is_none(),
        "a rejection in time is honoured: {:?}",
        row(&r, notice)
    );
}

/// At the instant: the silent account is deemed to accept (never before it), the notice is
/// Effective, and the rejecter stays Rejected with TermsCurrent=False naming the notice.
async fn assert_at_the_instant_silence_is_acceptance_and_the_rejection_stays(
    t: &TestCtx,
    notice: &str,
    silent: &str,
    rejecter: &str,
    instant: Timestamp,
) {
    let accounts: Api<Account> = Api::all(t.client.clone());
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    // At the instant: the silent account is deemed to accept, the rejecter stays Rejected.
    let timeout = until_plus_30s(instant);
    let ((n, n_seen), (a, a_seen)) = tokio::join!(
        watch_until(
            &notices,
            notice,
            "be Effective with one account DeemedAccepted and one Rejected",
            timeout,
            |n| counted(n) == Some(counts(0, 0, 1, 1))
                && cond_is(ncond(n, "Effective"), "True", "Effective"),
        ),
        watch_until(
            &accounts,
            silent,
            "list the notice as DeemedAccepted with TermsCurrent=True",
            timeout,
            |a| {
                row(a, notice).is_some_and(|r| r.decision == Decision::DeemedAccepted)
                    && condition(a, "TermsCurrent").is_some_and(|c| c.status == "True")
            },
        ),
    );
    eprintln!(
        "[e2e] deadline {instant}: the notice was seen Effective/DeemedAccepted {} after it, the silent account's status {} after it",
        secs(n_seen.duration_since(instant)),
        secs(a_seen.duration_since(instant))
    );
    assert!(
        n_seen >= instant && a_seen >= instant,
        "deemed accepted before the deadline {instant}: notice at {n_seen}, account at {a_seen}"
    );
    let st = n.status.as_ref().unwrap();
    assert_eq!(
        st.counts,
        Some(counts(0, 0, 1, 1)),
        "counts after the instant"
    );
    let eff = ncond(&n, "Effective").unwrap();
    assert!(
        eff.last_transition_time.0 >= instant,
        "Effective turned True before {instant}: {eff:?}"
    );
    let tc = condition(&a, "TermsCurrent").unwrap();
    assert_eq!(tc.reason, "Current", "{tc:?}");
    // The rejecter: still Rejected, TermsCurrent=False.
    let r = accounts.get(rejecter).await.unwrap();
    assert_eq!(
        row(&r, notice).map(|r| r.decision),
        Some(Decision::Rejected),
        "{:?}",
        r.status
    );
    let tc = condition(&r, "TermsCurrent").unwrap();
    assert_eq!(
        (tc.status.as_str(), tc.reason.as_str()),
        ("False", "NoticeRejected"),
        "{tc:?}"
    );
    assert!(
        tc.message.contains(notice),
        "TermsCurrent names the rejected notice: {tc:?}"
    );
}

#[tokio::test]
async fn a_discontinuation_with_a_too_short_window_is_enforced_at_the_earliest_lawful_instant() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("too-short").await;
    let pkg = package(&t).await;
    let group = t.name("disc");
    let acct = labelled_account(&t, "eu", &pkg, json!({ GROUP: group }), json!({})).await;
    // Served two days ago at midnight; effective one month later: 6 calendar months are required.
    let today = at_second(Timestamp::now().as_second().div_euclid(DAY) * DAY);
    let served = at_second(today.as_second() - 2 * DAY);
    let requested = plus_months(served, 1);
    let earliest = plus_months(served, 6);
    let notice = t.name("widget");
    t.track(NOTICES, &notice);
    t.apply(&notice_yaml(
        &notice,
        json!({
            "type": "Discontinuation",
            "summary": "The legacy chat widget is discontinued.",
            "service": "chat-widget-v1",
            "servedAt": rfc3339(served),
            "effectiveAt": rfc3339(requested),
            "accounts": selecting(&group)
        }),
    ))
    .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let n = wait_for(
        &notices,
        &notice,
        "have NoticeWindowSatisfied=False reason WindowTooShort",
        TIMEOUT,
        |n| observed(n) && cond_is(ncond(n, "NoticeWindowSatisfied"), "False", "WindowTooShort"),
    )
    .await;
    let w = ncond(&n, "NoticeWindowSatisfied").unwrap();
    assert!(
        w.message.contains(&rfc3339(earliest)),
        "the message must name the earliest lawful instant {} (servedAt + 6 calendar months): {:?}",
        rfc3339(earliest),
        w.message
    );
    let st = n.status.as_ref().unwrap();
    assert_eq!(
        time_of(&st.enforced_effective_at),
        Some(earliest),
        "status.enforcedEffectiveAt is the earliest lawful instant, not the requested {}",
        rfc3339(requested)
    );
    assert_eq!(time_of(&st.served_at), Some(served));
    assert!(
        cond_is(ncond(&n, "Effective"), "False", "Pending"),
        "not effective before the enforced instant: {:?}",
        ncond(&n, "Effective")
    );
    assert_eq!(
        counted(&n),
        Some(counts(1, 0, 0, 0)),
        "the account, Pending"
    );
    // The account sees the enforced instant.
    let accounts: Api<Account> = Api::all(t.client.clone());
    let a = wait_for(
        &accounts,
        &acct,
        "list the notice with the enforced effective instant",
        TIMEOUT,
        |a| row(a, &notice).is_some(),
    )
    .await;
    assert_eq!(row(&a, &notice).unwrap().effective_at.0, earliest);
}

#[tokio::test]
async fn an_exempt_notice_keeps_its_short_window() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("exempt").await;
    let served = at_second(now_s().as_second() - 3600);
    let effective = at_second(served.as_second() + DAY);
    let notice = t.name("tls10");
    t.track(NOTICES, &notice);
    t.apply(&notice_yaml(
        &notice,
        json!({
            "type": "Discontinuation",
            "summary": "TLS 1.0 is switched off: a material security risk.",
            "service": "tls-1.0",
            "exemption": "SecurityRisk",
            "servedAt": rfc3339(served),
            "effectiveAt": rfc3339(effective),
            "accounts": selecting(&t.name("nobody"))
        }),
    ))
    .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let n = wait_for(
        &notices,
        &notice,
        "have NoticeWindowSatisfied=True reason Exempt",
        TIMEOUT,
        |n| observed(n) && cond_is(ncond(n, "NoticeWindowSatisfied"), "True", "Exempt"),
    )
    .await;
    let st = n.status.as_ref().unwrap();
    assert_eq!(
        time_of(&st.enforced_effective_at),
        Some(effective),
        "an exempt notice is enforced at its effectiveAt"
    );
    assert!(
        cond_is(ncond(&n, "Effective"), "False", "Pending"),
        "{:?}",
        ncond(&n, "Effective")
    );
}

/// Server-side applies `yaml` with kubectl under the field manager `e2e-notices`.
fn kubectl_apply(yaml: &str) {
    kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=e2e-notices",
            "-f",
            "-",
        ],
        yaml,
    )
    .expect_ok();
}

/// `covenant_reconciles_total{kind="DeprecationNotice"}` of the running operator.
fn notice_reconciles() -> f64 {
    operator::metrics()
        .lines()
        .filter(|l| {
            l.starts_with("covenant_reconciles_total{") && l.contains("kind=\"DeprecationNotice\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn served_at_is_recorded_once_and_never_moved() {
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("served-at").await;
    let _ensure = operator::EnsureRunning;
    let notice = t.name("moved");
    t.track(NOTICES, &notice);
    let spec = |summary: &str| {
        json!({
            "type": "Amendment",
            "summary": summary,
            "effectiveAt": rfc3339(at_second(now_s().as_second() + 60 * DAY)),
            "accounts": selecting(&t.name("nobody"))
        })
    };
    let manifest = notice_yaml(&notice, spec("Fees are invoiced monthly."));
    let before = now_s();
    kubectl_apply(&manifest);
    let after = Timestamp::now();
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let n = wait_for(&notices, &notice, "record status.servedAt", TIMEOUT, |n| {
        observed(n) && n.status.as_ref().is_some_and(|s| s.served_at.is_some())
    })
    .await;
    let served = time_of(&n.status.as_ref().unwrap().served_at).unwrap();
    assert!(
        before <= served && served <= after,
        "status.servedAt {served} must be when Covenant first saw the notice ({before}..{after})"
    );
    assert!(
        n.spec.served_at.is_none(),
        "Covenant records servedAt in status, not in spec"
    );
    let unchanged = |n: &DeprecationNotice, when: &str| {
        assert_eq!(
            time_of(&n.status.as_ref().unwrap().served_at),
            Some(served),
            "status.servedAt moved {when}"
        );
    };

    // The same manifest again (what a GitOps tool does on every sync).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kubectl_apply(&manifest);
    let n = notices.get(&notice).await.unwrap();
    assert!(n.spec.served_at.is_none());
    tokio::time::sleep(Duration::from_secs(1)).await;
    unchanged(
        &notices.get(&notice).await.unwrap(),
        "after re-applying the same manifest",
    );

    // A changed manifest (new generation): reconciled, servedAt kept.
    kubectl_apply(&notice_yaml(
        &notice,
        spec("Fees are invoiced monthly, in arrears."),
    ));
    let n = wait_for(
        &notices,
        &notice,
        "be reconciled at its new generation",
        TIMEOUT,
        observed,
    )
    .await;
    assert!(n.metadata.generation > Some(1), "{:?}", n.metadata);
    unchanged(&n, "after a spec change");

    // A restarted operator keeps it.
    operator::kill();
    operator::start();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while notice_reconciles() < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted operator reconciled no DeprecationNotice"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = notices.get(&notice).await.unwrap();
    unchanged(&n, "after an operator restart");
    assert!(observed(&n));
    kubectl_apply(&manifest);
    let n = wait_for(
        &notices,
        &notice,
        "be reconciled after the restart",
        TIMEOUT,
        observed,
    )
    .await;
    unchanged(&n, "after a restart and a re-apply");
}

#[tokio::test]
async fn spec_served_at_is_immutable_once_set() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("served-at-cel").await;
    let notice = t.name("fixed");
    t.track(NOTICES, &notice);
    let served = at_second(now_s().as_second() - DAY);
    t.apply(&notice_yaml(
        &notice,
        json!({
            "type": "URLTermsUpdate",
            "summary": "The AUP moves to a new URL.",
            "servedAt": rfc3339(served),
            "effectiveAt": rfc3339(at_second(served.as_second() + 10 * DAY)),
            "accounts": selecting(&t.name("nobody"))
        }),
    ))
    .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let n = wait_for(&notices, &notice, "be reconciled", TIMEOUT, observed).await;
    assert_eq!(
        time_of(&n.status.as_ref().unwrap().served_at),
        Some(served),
        "status.servedAt is spec.servedAt"
    );
    let patch = |v: Value| {
        let notices = notices.clone();
        let notice = notice.clone();
        async move {
            notices
                .patch(
                    &notice,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "servedAt": v } })),
                )
                .await
        }
    };
    let moved = api_error(
        "moving spec.servedAt",
        patch(json!(rfc3339(at_second(served.as_second() - DAY)))).await,
    );
    let removed = api_error("removing spec.servedAt", patch(Value::Null).await);
    for err in [moved, removed] {
        assert_eq!(err.code, 422, "{err:?}");
        assert!(
            err.message
                .contains("can be given only when the notice is created, and never changed"),
            "{}",
            err.message
        );
    }
    let n = notices.get(&notice).await.unwrap();
    assert_eq!(time_of(&n.spec.served_at), Some(served));
    // Other fields still change.
    notices
        .patch(
            &notice,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "summary": "The AUP moves to a new URL (v2)." } })),
        )
        .await
        .expect("changing the summary is allowed");
}

/// Waits until the notice counts exactly `want.len()` accounts, all in `decision`, and each of `want`
/// lists the notice with that decision in its `status.notices`.
async fn wait_listed(
    api: &Api<DeprecationNotice>,
    notice: &str,
    want: &[&str],
    decision: Decision,
) {
    let n = i32::try_from(want.len()).expect("a few accounts");
    let mut c = DecisionCounts::default();
    match decision {
        Decision::Pending => c.pending = n,
        Decision::Accepted => c.accepted = n,
        Decision::DeemedAccepted => c.deemed_accepted = n,
        Decision::Rejected => c.rejected = n,
    }
    wait_for(api, notice, &format!("count {c:?}"), TIMEOUT, move |n| {
        observed(n) && counted(n) == Some(c.clone())
    })
    .await;
    let accounts: Api<Account> = Api::all(api.clone().into_client());
    for a in want {
        wait_for(
            &accounts,
            a,
            &format!("list notice {notice} as {decision:?}"),
            TIMEOUT,
            |acc| row(acc, notice).is_some_and(|r| r.decision == decision),
        )
        .await;
    }
}

/// Waits until the account does (`true`) or does not list `notice` in `status.notices`, with the
/// matching TermsCurrent.
async fn wait_account_lists(client: &Client, account: &str, notice: &str, listed: bool) {
    let api: Api<Account> = Api::all(client.clone());
    let what = if listed {
        format!("list notice {notice} with TermsCurrent=False")
    } else {
        format!("no longer list notice {notice}, TermsCurrent=True")
    };
    wait_for(&api, account, &what, TIMEOUT, |a| {
        row(a, notice).is_some() == listed
            && condition(a, "TermsCurrent").is_some_and(|c| (c.status == "True") != listed)
    })
    .await;
}

/// An amendment served a day ago, effective in 40 days: every selected account is Pending.
fn pending_amendment(name: &str, selector: Value) -> String {
    let served = at_second(now_s().as_second() - DAY);
    notice_yaml(
        name,
        json!({
            "type": "Amendment",
            "summary": "Support hours change.",
            "servedAt": rfc3339(served),
            "effectiveAt": rfc3339(at_second(served.as_second() + 40 * DAY)),
            "accounts": selector
        }),
    )
}

#[tokio::test]
async fn a_relabelled_account_leaves_the_notice_and_a_deleted_notice_leaves_the_accounts() {
    let _op = OPERATOR.read().await;
    let t = TestCtx::new("relabel").await;
    let pkg = package(&t).await;
    let group = t.name("sel");
    let a = labelled_account(&t, "stay", &pkg, json!({ GROUP: group }), json!({})).await;
    let b = labelled_account(&t, "leave", &pkg, json!({ GROUP: group }), json!({})).await;
    let notice = t.name("hours");
    t.track(NOTICES, &notice);
    t.apply(&pending_amendment(&notice, selecting(&group)))
        .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    wait_listed(&notices, &notice, &[&a, &b], Decision::Pending).await;
    wait_account_lists(&t.client, &a, &notice, true).await;
    wait_account_lists(&t.client, &b, &notice, true).await;

    // Relabel b: the notice no longer selects it.
    Api::<Account>::all(t.client.clone())
        .patch(
            &b,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { GROUP: t.name("elsewhere") } } })),
        )
        .await
        .unwrap();
    wait_listed(&notices, &notice, &[&a], Decision::Pending).await;
    let n = notices.get(&notice).await.unwrap();
    assert_eq!(
        n.status.as_ref().unwrap().counts,
        Some(counts(1, 0, 0, 0)),
        "counts after the relabel"
    );
    wait_account_lists(&t.client, &b, &notice, false).await;
    wait_account_lists(&t.client, &a, &notice, true).await;

    // Delete the notice: no account lists it any more.
    notices
        .delete(&notice, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&notices, &notice, false, TIMEOUT).await;
    wait_account_lists(&t.client, &a, &notice, false).await;
    wait_account_lists(&t.client, &b, &notice, false).await;
}

#[tokio::test]
async fn a_narrowed_notice_selector_releases_the_accounts_it_no_longer_selects() {
    // Alone: another test's notice being deleted makes the operator reconcile every account, which
    // would hide a missing trigger here.
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("narrow").await;
    let pkg = package(&t).await;
    let group = t.name("sel");
    let a = labelled_account(
        &t,
        "gold",
        &pkg,
        json!({ GROUP: group, "e2e-tier": "gold" }),
        json!({}),
    )
    .await;
    let b = labelled_account(
        &t,
        "silver",
        &pkg,
        json!({ GROUP: group, "e2e-tier": "silver" }),
        json!({}),
    )
    .await;
    let notice = t.name("gold-only");
    t.track(NOTICES, &notice);
    t.apply(&pending_amendment(&notice, selecting(&group)))
        .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    wait_listed(&notices, &notice, &[&a, &b], Decision::Pending).await;
    wait_account_lists(&t.client, &b, &notice, true).await;
    // Let the accounts settle (the quota controller's first status write also triggers a reconcile
    // of the account), so that only the notice's change can update them from here on.
    for acct in [&a, &b] {
        wait_for(
            &Api::<ResourceQuota>::namespaced(t.client.clone(), acct),
            "covenant-quota",
            "have its status filled by the quota controller",
            TIMEOUT,
            |q| {
                !fixtures::status_hard(q).is_empty()
                    && fixtures::status_hard(q) == fixtures::hard(q)
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The notice now selects the gold account only.
    notices
        .patch(
            &notice,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "accounts": {
                "matchLabels": { GROUP: group, "e2e-tier": "gold" }
            } } })),
        )
        .await
        .unwrap();
    wait_listed(&notices, &notice, &[&a], Decision::Pending).await;
    wait_account_lists(&t.client, &a, &notice, true).await;
    wait_account_lists(&t.client, &b, &notice, false).await;
}

/// Puts the earlier release's `status.accounts` (a row per account) back into the notice CRD's
/// schema (`true`), or takes it out again (`false`). The API server may take a moment to serve
/// notices by the changed schema: callers wait for its effect.
async fn old_rows_in_schema(client: &Client, present: bool) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually("the notice CRD's schema changed", TIMEOUT, || async {
        let crd = crds.get(NOTICES).await.map_err(|e| e.to_string())?;
        let mut v = serde_json::to_value(&crd).map_err(|e| e.to_string())?;
        let status = v
            .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/status/properties")
            .and_then(Value::as_object_mut)
            .ok_or("the CRD has no status schema")?;
        if present {
            status.insert(
                "accounts".into(),
                json!({
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "decision"],
                        "properties": {
                            "name": { "type": "string" },
                            "decision": { "type": "string" }
                        }
                    }
                }),
            );
        } else {
            status.remove("accounts");
        }
        let crd: CustomResourceDefinition = serde_json::from_value(v).map_err(|e| e.to_string())?;
        crds.replace(NOTICES, &Default::default(), &crd)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
}

/// `status.accounts` of the notice as the API server returns it now.
async fn stored_rows(client: &Client, notice: &str) -> Option<Value> {
    let raw: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<DeprecationNotice>(&()),
    );
    let n = raw.get(notice).await.expect("reading the notice");
    n.data.get("status")?.get("accounts").cloned()
}

#[tokio::test]
async fn a_notice_stored_with_the_earlier_per_account_rows_loses_them_when_the_operator_recounts() {
    // Alone: the notice CRD's schema changes for a while, which restarts every watch of notices.
    let _op = OPERATOR.write().await;
    let t = TestCtx::new("migrate").await;
    let pkg = package(&t).await;
    let group = t.name("later");
    let acct = labelled_account(
        &t,
        "acme",
        &pkg,
        json!({ GROUP: t.name("before") }),
        json!({}),
    )
    .await;
    // The notice the operator will recount, and one it has no reason to write again (the control).
    let notice = t.name("rows");
    let control = t.name("control");
    t.track(NOTICES, &notice);
    t.track(NOTICES, &control);
    t.apply(&pending_amendment(&notice, selecting(&group)))
        .await;
    t.apply(&pending_amendment(&control, selecting(&t.name("nobody"))))
        .await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let mut statuses = Vec::new();
    for name in [&notice, &control] {
        let n = wait_for(&notices, name, "count no account", TIMEOUT, |n| {
            observed(n) && counted(n) == Some(counts(0, 0, 0, 0))
        })
        .await;
        statuses.push((name.clone(), n.status.expect("a status")));
    }

    // The earlier release: its CRD knew status.accounts, and its operator applied (server-side, as
    // the same field manager) a status with a row per account.
    old_rows_in_schema(&t.client, true).await;
    let rows = json!([{ "name": acct, "decision": "Pending" }]);
    for (name, status) in &statuses {
        let mut old = serde_json::to_value(status).expect("JSON");
        old["accounts"] = rows.clone();
        eventually(
            "the earlier operator's status stored with its rows",
            TIMEOUT,
            || async {
                notices
                    .patch_status(
                        name,
                        &PatchParams::apply("covenant").force(),
                        &Patch::Apply(json!({
                            "apiVersion": "covenant.dev/v1alpha1",
                            "kind": "DeprecationNotice",
                            "status": old
                        })),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                match stored_rows(&t.client, name).await {
                    Some(r) if r == rows => Ok(()),
                    other => Err(format!("status.accounts reads {other:?}")),
                }
            },
        )
        .await;
    }

    // The upgrade: this release's schema, and its operator recounting the notice (an account joins
    // it; nobody but the operator writes the notice).
    old_rows_in_schema(&t.client, false).await;
    Api::<Account>::all(t.client.clone())
        .patch(
            &acct,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { GROUP: group } } })),
        )
        .await
        .expect("relabelling the account");
    wait_for(
        &notices,
        &notice,
        "count the account as Pending",
        TIMEOUT,
        |n| counted(n) == Some(counts(1, 0, 0, 0)),
    )
    .await;
    // What is stored, read through a schema that knows the old field again (in effect once the
    // control's rows, which nothing rewrote, show again): the recounted notice's rows are gone, not
    // merely hidden by this release's schema.
    old_rows_in_schema(&t.client, true).await;
    eventually("the control's stored rows read again", TIMEOUT, || async {
        match stored_rows(&t.client, &control).await {
            Some(r) if r == rows => Ok(()),
            other => Err(format!("status.accounts reads {other:?}")),
        }
    })
    .await;
    let left = stored_rows(&t.client, &notice).await;
    old_rows_in_schema(&t.client, false).await;
    assert_eq!(
        left, None,
        "the earlier release's rows are still stored after the operator recounted the notice"
    );
    let req = http::Request::get(format!(
        "/apis/covenant.dev/v1alpha1/deprecationnotices/{notice}"
    ))
    .body(Vec::new())
    .expect("a request");
    let raw = t
        .client
        .request_text(req)
        .await
        .expect("reading the notice");
    eprintln!(
        "[e2e] the recounted notice, as the API server returns it (managedFields included): {} bytes",
        raw.len()
    );
}
