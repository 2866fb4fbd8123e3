//! Tenants answer for themselves, judged by what the API server lets each identity do and by what
//! the operator makes of it: an account's administrator (impersonated) answers a notice with a
//! NoticeResponse in the account's namespace; nobody else can answer for it (another tenant, a
//! ServiceAccount the administrator gave the right, the administrator in another tenant's namespace);
//! an answer cannot be back-dated, changed or withdrawn; the latest answer given by the deadline stands
//! and one a second after it does not; administrators read their own Account and nothing of other
//! tenants; a notice cannot be shortened once served (servedAt only at creation, an earlier
//! effectiveAt serves it again, no exemption on an amendment); a suspended tenant can still answer;
//! and the organization's own people are bound by its administrators without the platform.
//!
//! Every notice selects accounts by a label unique to its test.

use std::time::Duration;

use covenant::api::{
    Account, Decision, DeletionPolicy, DeprecationNotice, Exemption, NoticeResponse, NoticeType,
    OrganizationSpec,
};
use covenant_e2e::fixtures::{self, api_error};
use covenant_e2e::timing::rfc3339;
use covenant_e2e::{
    Manifest, TIMEOUT, Tenant, TestCtx, can, eventually, impersonate, wait_for, wait_gone,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NOTICES: &str = "deprecationnotices.covenant.dev";
const SUSPENSIONS: &str = "suspensions.covenant.dev";
const GROUP: &str = "e2e-answer-group";
const DAY: i64 = 24 * 60 * 60;

fn at_second(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("a valid instant")
}

fn now_s() -> Timestamp {
    at_second(Timestamp::now().as_second())
}

/// An amendment selecting the test's accounts, served at `served` for `effective`.
async fn amendment(t: &TestCtx, base: &str, served: Timestamp, effective: Timestamp) -> String {
    let name = t.name(base);
    t.track(NOTICES, &name);
    let mut notice = fixtures::notice(
        &name,
        NoticeType::Amendment,
        "The data processing addendum changes.",
        effective,
        &[(GROUP, &t.suffix)],
    );
    notice.spec.url = Some("https://example.com/dpa-v2".to_string());
    notice.spec.served_at = Some(Time(served));
    t.apply(&notice).await;
    name
}

/// A NoticeResponse answering `notice` with `decision` (`Accept` or `Reject`).
fn response(name: &str, notice: &str, decision: &str) -> NoticeResponse {
    fixtures::response(name, notice, fixtures::typed("a decision", json!(decision)))
}

/// `who` creates a NoticeResponse `name` answering `notice` with `decision` in `ns`.
async fn answer(
    who: &Client,
    ns: &str,
    name: &str,
    notice: &str,
    decision: &str,
) -> Result<NoticeResponse, kube::Error> {
    Api::<NoticeResponse>::namespaced(who.clone(), ns)
        .create(&PostParams::default(), &response(name, notice, decision))
        .await
}

/// Waits until the response's `Honoured` condition has `status` and `reason`.
async fn wait_verdict(
    t: &TestCtx,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> NoticeResponse {
    let api: Api<NoticeResponse> = Api::namespaced(t.client.clone(), ns);
    let what = format!("say Honoured={status} ({reason})");
    wait_for(&api, name, &what, TIMEOUT, |r: &NoticeResponse| {
        r.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Honoured" && c.status == status && c.reason == reason)
        })
    })
    .await
}

/// The account's row of `notice` (it must be listed).
fn row_of(a: &Account, notice: &str) -> covenant::api::AccountNoticeStatus {
    a.status
        .as_ref()
        .and_then(|s| s.notices.iter().find(|r| r.name == notice))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} lists no notice {notice}",
                kube::ResourceExt::name_any(a)
            )
        })
}

/// Waits until the account lists `notice` with `decision`.
async fn wait_decision(t: &TestCtx, account: &str, notice: &str, decision: Decision) -> Account {
    let api: Api<Account> = Api::all(t.client.clone());
    let what = format!("list {notice} as {decision:?}");
    wait_for(&api, account, &what, TIMEOUT, |a: &Account| {
        a.status.as_ref().is_some_and(|s| {
            s.notices
                .iter()
                .any(|r| r.name == notice && r.decision == decision)
        })
    })
    .await
}

#[tokio::test]
async fn an_administrator_answers_for_its_account_and_nobody_else_can() {
    let t = TestCtx::new("answer-who").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let other = t.tenant("other").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let alice = impersonate(&acme.admin, &[]).await;
    let bob = impersonate(&other.admin, &[]).await;
    assert_the_administrators_answer_is_the_accounts(&t, &acme, &notice, &alice).await;
    assert_nobody_else_answers_for_it(&t, &acme, &other, &notice, &alice, &bob).await;
    assert_an_answer_is_not_backdated_and_the_later_one_stands(&t, &acme, &notice, served, &alice)
        .await;
    assert_an_answer_cannot_be_changed_or_withdrawn(&t, &acme, &alice).await;
}

/// The administrator answers in the account's namespace: it is the account's answer, and the
/// notice counts it (counts only, no row naming an account).
async fn assert_the_administrators_answer_is_the_accounts(
    t: &TestCtx,
    acme: &Tenant,
    notice: &str,
    alice: &Client,
) {
    answer(alice, &acme.ns, "reject", notice, "Reject")
        .await
        .expect("an administrator answers in its account's namespace");
    let r = wait_verdict(t, &acme.ns, "reject", "True", "Stands").await;
    assert_eq!(
        r.status.as_ref().unwrap().account.as_deref(),
        Some(acme.account.as_str())
    );
    let a = wait_decision(t, &acme.account, notice, Decision::Rejected).await;
    let row = row_of(&a, notice);
    assert_eq!(row.answered_by, Some(format!("{}/reject", acme.ns)));
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    wait_for(
        &notices,
        notice,
        "count the account as Rejected",
        TIMEOUT,
        |n: &DeprecationNotice| {
            // acme rejected, other has not answered: counts only, no row naming either.
            n.status
                .as_ref()
                .and_then(|s| s.counts.as_ref())
                .is_some_and(|c| {
                    (c.pending, c.accepted, c.deemed_accepted, c.rejected) == (1, 0, 0, 1)
                })
        },
    )
    .await;
}

/// Nobody answers for the account but its administrators: not the administrator in another
/// tenant's namespace, not a ServiceAccount it delegated to, not another tenant's administrator.
async fn assert_nobody_else_answers_for_it(
    t: &TestCtx,
    acme: &Tenant,
    other: &Tenant,
    notice: &str,
    alice: &Client,
    bob: &Client,
) {
    // Not for another tenant: the API server refuses an answer in its namespace (RBAC).
    let e = api_error(
        "acme's administrator answering in other's namespace",
        answer(alice, &other.ns, "forged", notice, "Accept").await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    // Nor may anyone the administrator delegates to: a ServiceAccount with a Role that grants create.
    let sa = format!("system:serviceaccount:{}:helper", acme.ns);
    let roles: Api<Role> = Api::namespaced(alice.clone(), &acme.ns);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "answerer" },
                "rules": [{ "apiGroups": ["covenant.dev"], "resources": ["noticeresponses"],
                            "verbs": ["create"] }]
            }))
            .unwrap(),
        )
        .await
        .expect("the administrator may make a Role of what it holds");
    let bindings: Api<RoleBinding> = Api::namespaced(alice.clone(), &acme.ns);
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "answerer" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "answerer" },
                "subjects": [{ "kind": "ServiceAccount", "name": "helper", "namespace": acme.ns }]
            }))
            .unwrap(),
        )
        .await
        .expect("and bind its own ServiceAccount");
    eventually(
        "RBAC lets the ServiceAccount create responses",
        TIMEOUT,
        || async {
            can(
                &t.client,
                &sa,
                &[],
                "create",
                "noticeresponses.covenant.dev",
                "",
                &acme.ns,
            )
            .await
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    let helper = impersonate(&sa, &["system:serviceaccounts"]).await;
    let e = api_error(
        "a ServiceAccount answering for the account",
        answer(&helper, &acme.ns, "by-helper", notice, "Accept").await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    assert!(
        e.message.contains("only the administrators of Account"),
        "{}",
        e.message
    );
    // The other tenant's administrator has no say in acme's namespace either.
    let e = api_error(
        "other's administrator answering in acme's namespace",
        answer(bob, &acme.ns, "by-bob", notice, "Accept").await,
    );
    assert_eq!(e.code, 403, "{e:?}");
}

/// An answer cannot be back-dated (the API server sets its time), and the later answer stands over
/// the earlier one.
async fn assert_an_answer_is_not_backdated_and_the_later_one_stands(
    t: &TestCtx,
    acme: &Tenant,
    notice: &str,
    served: Timestamp,
    alice: &Client,
) {
    // creationTimestamp has whole seconds, and two answers in the same second keep the rejection:
    // the next answer comes a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // An answer cannot be back-dated: the API server sets its time.
    let mut dated = response("backdated", notice, "Accept");
    dated.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        at_second(served.as_second() - 10 * DAY),
    ));
    let before = now_s();
    let made = Api::<NoticeResponse>::namespaced(alice.clone(), &acme.ns)
        .create(&PostParams::default(), &dated)
        .await
        .expect("an administrator answers again");
    let when = made.metadata.creation_timestamp.unwrap().0;
    assert!(
        when >= before,
        "creationTimestamp {when} is the API server's, not {before}'s past"
    );
    // The later answer stands; the first one is superseded.
    wait_verdict(t, &acme.ns, "backdated", "True", "Stands").await;
    wait_verdict(t, &acme.ns, "reject", "False", "Superseded").await;
    wait_decision(t, &acme.account, notice, Decision::Accepted).await;
}

/// An answer cannot be changed or withdrawn: RBAC refuses the administrator, and the CRD refuses even
/// a cluster administrator's edit.
async fn assert_an_answer_cannot_be_changed_or_withdrawn(
    t: &TestCtx,
    acme: &Tenant,
    alice: &Client,
) {
    let mine: Api<NoticeResponse> = Api::namespaced(alice.clone(), &acme.ns);
    let flip = json!({ "spec": { "decision": "Reject" } });
    let e = api_error(
        "the administrator changing its answer",
        mine.patch("backdated", &PatchParams::default(), &Patch::Merge(&flip))
            .await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    let e = api_error(
        "the administrator withdrawing its answer",
        mine.delete("backdated", &Default::default()).await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    let admin: Api<NoticeResponse> = Api::namespaced(t.client.clone(), &acme.ns);
    let e = api_error(
        "a cluster administrator changing an answer",
        admin
            .patch("backdated", &PatchParams::default(), &Patch::Merge(&flip))
            .await,
    );
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message.contains("cannot be changed once given"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn administrators_read_their_own_account_and_nothing_of_other_tenants() {
    let t = TestCtx::new("answer-read").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let other = t.tenant("other").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    wait_decision(&t, &acme.account, &notice, Decision::Pending).await;
    let alice = impersonate(&acme.admin, &[]).await;
    let accounts: Api<Account> = Api::all(alice.clone());
    let mine = eventually("the administrator reads its Account", TIMEOUT, || async {
        accounts.get(&acme.account).await.map_err(|e| e.to_string())
    })
    .await;
    // Its kubectl shows what it must decide and by when.
    let row = row_of(&mine, &notice);
    assert_eq!(row.decision, Decision::Pending);
    assert_eq!(
        row.summary.as_deref(),
        Some("The data processing addendum changes.")
    );
    assert_eq!(row.url.as_deref(), Some("https://example.com/dpa-v2"));
    assert_eq!(
        row.rejection_deadline.map(|d| d.0),
        Some(at_second(served.as_second() + 40 * DAY))
    );
    // Nothing of other tenants: not their Account, not the list of accounts (the notices: see
    // administrators_read_and_watch_the_notices_that_concern_them_and_nothing_of_other_tenants).
    let e = api_error(
        "reading another tenant's Account",
        accounts.get(&other.account).await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    let e = api_error("listing accounts", accounts.list(&Default::default()).await);
    assert_eq!(e.code, 403, "{e:?}");
    for (name, allowed) in [(&acme.account, true), (&other.account, false)] {
        let review = can_get_account(&t.client, &acme.admin, name).await;
        assert_eq!(review, allowed, "SubjectAccessReview get account {name}");
    }
}

/// What of another tenant a tenant must never see: its account (and namespace) name and its
/// administrator.
fn assert_nothing_of(other: &Tenant, seen: &str, what: &str) {
    for secret in [&other.account, &other.admin] {
        assert!(
            !seen.contains(secret.as_str()),
            "{what} names another tenant ({secret}): {seen}"
        );
    }
}

/// `(pending, accepted, deemedAccepted, rejected)` of a notice.
fn counts_of(n: &DeprecationNotice) -> Option<(i32, i32, i32, i32)> {
    let c = n.status.as_ref()?.counts.as_ref()?;
    Some((c.pending, c.accepted, c.deemed_accepted, c.rejected))
}

#[tokio::test]
async fn administrators_read_and_watch_the_notices_that_concern_them_and_nothing_of_other_tenants()
{
    let t = TestCtx::new("answer-notices").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let other = t.tenant("other").label(GROUP, &t.suffix).await;
    // Two notices concern both tenants: one with 40 days to go, one whose rejection deadline comes
    // in a few seconds (served 30 days before it). A third concerns the other tenant alone, and
    // selects it by a label that does not name it.
    let served = at_second(now_s().as_second() - DAY);
    let dpa = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let deadline = at_second(now_s().as_second() + 60);
    let soon = amendment(
        &t,
        "soon",
        at_second(deadline.as_second() - 30 * DAY),
        deadline,
    )
    .await;
    let theirs = t.name("theirs");
    t.track(NOTICES, &theirs);
    let target = t.name("target");
    Api::<Account>::all(t.client.clone())
        .patch(
            &other.account,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "e2e-answer-target": target } } })),
        )
        .await
        .expect("labelling the other account");
    let mut notice = fixtures::notice(
        &theirs,
        NoticeType::Amendment,
        "Your plan ends.",
        at_second(served.as_second() + 200 * DAY),
        &[("e2e-answer-target", &target)],
    );
    notice.spec.served_at = Some(Time(served));
    t.apply(&notice).await;
    wait_decision(&t, &acme.account, &dpa, Decision::Pending).await;
    wait_decision(&t, &acme.account, &soon, Decision::Pending).await;
    wait_decision(&t, &other.account, &theirs, Decision::Pending).await;

    let alice = impersonate(&acme.admin, &[]).await;
    let notices: Api<DeprecationNotice> = Api::all(alice.clone());
    assert_acme_reads_its_notice_and_nothing_of_the_other_tenant(
        &acme, &other, &notices, &dpa, served,
    )
    .await;
    assert_the_other_tenants_notice_is_refused_as_a_missing_one(
        &t, &acme, &other, &notices, &dpa, &theirs,
    )
    .await;
    assert_acme_watches_the_counts_move_and_never_sees_who(
        &acme, &other, &alice, &notices, &dpa, &soon, deadline,
    )
    .await;
    assert_the_grants_follow_the_notices(&t, &acme, &dpa, &soon, &theirs).await;
}

/// A notice that concerns acme: its administrator reads it (spec, window, counts; with kube and with
/// kubectl), and nothing in it names the other tenant.
async fn assert_acme_reads_its_notice_and_nothing_of_the_other_tenant(
    acme: &Tenant,
    other: &Tenant,
    notices: &Api<DeprecationNotice>,
    dpa: &str,
    served: Timestamp,
) {
    // A notice that concerns acme: its administrator reads it (once the account's reconcile has
    // granted it), spec, window and counts, and nothing in it names the other tenant.
    let n = eventually("acme's administrator reads the notice", TIMEOUT, || async {
        notices.get(dpa).await.map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(
        n.spec.summary, "The data processing addendum changes.",
        "the spec"
    );
    assert_eq!(
        n.status
            .as_ref()
            .and_then(|s| s.rejection_deadline.as_ref())
            .map(|d| d.0),
        Some(at_second(served.as_second() + 40 * DAY)),
        "the window"
    );
    assert_eq!(counts_of(&n), Some((2, 0, 0, 0)), "the counts");
    let raw = serde_json::to_string(&n).expect("JSON");
    assert_nothing_of(other, &raw, "the notice as acme's administrator reads it");
    // So does kubectl, as the administrator would run it.
    let out = covenant_e2e::kubectl(&[
        "get",
        "deprecationnotice",
        dpa,
        "--as",
        &acme.admin,
        "-o",
        "json",
    ]);
    assert!(out.success, "{}: {}", out.command, out.stderr);
    assert_nothing_of(
        other,
        &out.stdout,
        "kubectl get deprecationnotice --as acme's administrator",
    );
}

/// A notice that concerns only the other tenant is refused to acme's administrator as a missing one
/// is, by get and by list; only a list naming a notice acme may read is allowed.
async fn assert_the_other_tenants_notice_is_refused_as_a_missing_one(
    t: &TestCtx,
    acme: &Tenant,
    other: &Tenant,
    notices: &Api<DeprecationNotice>,
    dpa: &str,
    theirs: &str,
) {
    // A notice that concerns only the other tenant is refused, as one that does not exist is: the
    // answer is the same 403 either way, so it does not tell that the notice exists.
    for name in [theirs.to_string(), t.name("no-such-notice")] {
        let e = api_error(
            "reading a notice that does not concern acme",
            notices.get(&name).await,
        );
        assert_eq!(e.code, 403, "{name}: {e:?}");
        assert_nothing_of(other, &e.message, "the refusal");
    }
    let out = covenant_e2e::kubectl(&["get", "deprecationnotice", theirs, "--as", &acme.admin]);
    assert!(
        !out.success && out.stderr.contains("Forbidden"),
        "{}: {} {}",
        out.command,
        out.stdout,
        out.stderr
    );
    // Listing every notice is refused (only a list naming one notice it may read is allowed).
    let e = api_error(
        "listing the notices",
        notices.list(&Default::default()).await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    let one = notices
        .list(&kube::api::ListParams::default().fields(&format!("metadata.name={dpa}")))
        .await
        .expect("a list naming a notice that concerns acme");
    assert_eq!(one.items.len(), 1);
    let e = api_error(
        "listing a notice that does not concern acme",
        notices
            .list(&kube::api::ListParams::default().fields(&format!("metadata.name={theirs}")))
            .await,
    );
    assert_eq!(e.code, 403, "{e:?}");
}

/// acme's administrator watches the counts move as tenants answer and as a deadline passes, and no
/// version it sees names the other tenant.
async fn assert_acme_watches_the_counts_move_and_never_sees_who(
    acme: &Tenant,
    other: &Tenant,
    alice: &Client,
    notices: &Api<DeprecationNotice>,
    dpa: &str,
    soon: &str,
    deadline: Timestamp,
) {
    // The counts move as tenants answer: acme accepts, the other tenant rejects. acme's
    // administrator watches (a watch naming the notice, as `kubectl get -w` makes) and sees both,
    // never who.
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let record = |n: &DeprecationNotice| {
        seen.lock()
            .unwrap()
            .push(serde_json::to_string(n).expect("JSON"));
    };
    let watch = covenant_e2e::timing::watch_until(
        notices,
        dpa,
        "count one Accepted and one Rejected",
        TIMEOUT,
        |n| {
            record(n);
            counts_of(n) == Some((0, 1, 0, 1))
        },
    );
    let answers = async {
        answer(alice, &acme.ns, "accept", dpa, "Accept")
            .await
            .expect("acme accepts");
        let bob = impersonate(&other.admin, &[]).await;
        answer(&bob, &other.ns, "reject", dpa, "Reject")
            .await
            .expect("the other tenant rejects");
    };
    let ((n, _), ()) = tokio::join!(watch, answers);
    assert_eq!(counts_of(&n), Some((0, 1, 0, 1)));
    let req = http::Request::get(format!(
        "/apis/covenant.dev/v1alpha1/deprecationnotices/{dpa}"
    ))
    .body(Vec::new())
    .expect("a request");
    let raw = alice.request_text(req).await.expect("reading the notice");
    assert_nothing_of(
        other,
        &raw,
        "the notice's bytes as the API server sends them to acme",
    );
    eprintln!(
        "[e2e] a notice over 2 accounts that answered, as the API server returns it: {} bytes",
        raw.len()
    );
    // The deadline of the other notice passes with nobody answering: both are deemed to accept,
    // and acme's administrator sees that on its watch too.
    let (n, at) = covenant_e2e::timing::watch_until(
        notices,
        soon,
        "count both accounts DeemedAccepted",
        covenant_e2e::timing::until_plus_30s(deadline),
        |n| {
            record(n);
            counts_of(n) == Some((0, 0, 2, 0))
        },
    )
    .await;
    assert!(
        at >= deadline,
        "deemed accepted at {at}, before the deadline {deadline}"
    );
    assert!(
        n.status.as_ref().is_some_and(|s| s
            .conditions
            .iter()
            .any(|c| c.type_ == "Effective" && c.status == "True")),
        "{:?}",
        n.status
    );
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() >= 2, "the watches saw {} versions", seen.len());
    for s in &seen {
        assert_nothing_of(other, s, "a notice acme's administrator watched");
    }
}

/// The grants follow the notices: once one is deleted, its name is no longer readable.
async fn assert_the_grants_follow_the_notices(
    t: &TestCtx,
    acme: &Tenant,
    dpa: &str,
    soon: &str,
    theirs: &str,
) {
    // The grants follow the notices: once one is deleted, its name is no longer readable.
    Api::<DeprecationNotice>::all(t.client.clone())
        .delete(soon, &Default::default())
        .await
        .expect("deleting a notice");
    eventually(
        "acme's administrator is refused the deleted notice's name",
        TIMEOUT,
        || async {
            let review = can_get_notice(&t.client, &acme.admin, soon).await;
            if review {
                Err("still allowed".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert!(can_get_notice(&t.client, &acme.admin, dpa).await);
    assert!(!can_get_notice(&t.client, &acme.admin, theirs).await);
}

/// The API server's answer to "may `user` get DeprecationNotice `name`".
async fn can_get_notice(client: &Client, user: &str, name: &str) -> bool {
    can_get(client, user, "deprecationnotices", name).await
}

/// The API server's answer to "may `user` get Account `name`".
async fn can_get_account(client: &Client, user: &str, name: &str) -> bool {
    can_get(client, user, "accounts", name).await
}

/// The API server's answer to "may `user` get the covenant.dev `resource` `name`".
async fn can_get(client: &Client, user: &str, resource: &str, name: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("get".into()),
                group: Some("covenant.dev".into()),
                resource: Some(resource.into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn an_answer_one_second_after_the_deadline_is_not_honoured() {
    let t = TestCtx::new("answer-late").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    // Served 30 days ago less a few seconds, effective 30 days after: the deadline is seconds away.
    let deadline = at_second(now_s().as_second() + 12);
    let served = at_second(deadline.as_second() - 30 * DAY);
    let notice = amendment(&t, "dpa", served, deadline).await;
    let alice = impersonate(&acme.admin, &[]).await;
    answer(&alice, &acme.ns, "in-time", &notice, "Accept")
        .await
        .expect("an answer before the deadline");
    wait_verdict(&t, &acme.ns, "in-time", "True", "Stands").await;
    // One second after the deadline (creationTimestamp has whole seconds).
    let after = deadline.as_second() + 1;
    while Timestamp::now().as_second() < after {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = answer(&alice, &acme.ns, "late", &notice, "Reject")
        .await
        .expect("a late answer is accepted by the API server, and recorded");
    assert!(late.metadata.creation_timestamp.unwrap().0 > deadline);
    wait_verdict(&t, &acme.ns, "late", "False", "AfterDeadline").await;
    let r = wait_verdict(&t, &acme.ns, "in-time", "True", "Stands").await;
    assert_eq!(
        r.status.unwrap().account_decision,
        Some(Decision::Accepted),
        "the answer given in time stands"
    );
    let a = wait_decision(&t, &acme.account, &notice, Decision::Accepted).await;
    let row = row_of(&a, &notice);
    assert!(
        row.message
            .as_deref()
            .unwrap_or_default()
            .contains("after the rejection deadline"),
        "the account's status says why the rejection does not count: {:?}",
        row.message
    );
    wait_verdict(&t, &acme.ns, "in-time", "True", "Stands").await;
}

#[tokio::test]
async fn a_served_notice_cannot_be_shortened() {
    let t = TestCtx::new("answer-shorten").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());

    assert_served_at_cannot_be_added_later(&t, &notices).await;
    assert_an_earlier_effective_at_serves_the_notice_again(&t, &acme, &notices).await;
    assert_an_exempt_amendment_is_refused(&t).await;
}

/// servedAt only at creation: adding it later is refused.
async fn assert_served_at_cannot_be_added_later(t: &TestCtx, notices: &Api<DeprecationNotice>) {
    // servedAt only at creation: adding it later is refused.
    let bare = t.name("bare");
    t.track(NOTICES, &bare);
    t.apply(&fixtures::notice(
        &bare,
        NoticeType::Amendment,
        "A later change.",
        at_second(now_s().as_second() + 60 * DAY),
        &[(GROUP, &t.suffix)],
    ))
    .await;
    let e = api_error(
        "adding servedAt to a served notice",
        notices
            .patch(
                &bare,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "servedAt": rfc3339(at_second(now_s().as_second() - 20 * DAY)) } })),
            )
            .await,
    );
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message.contains("only when the notice is created"),
        "{}",
        e.message
    );
}

/// An earlier effectiveAt serves the notice again, with 30 days to reject from the new service.
async fn assert_an_earlier_effective_at_serves_the_notice_again(
    t: &TestCtx,
    acme: &Tenant,
    notices: &Api<DeprecationNotice>,
) {
    // An earlier effectiveAt serves the notice again: served 20 days ago for 40 days from now, moved
    // to 5 days from now. Counted from the first service the tenant would have 10 days left; served
    // again, it has 30.
    let served = at_second(now_s().as_second() - 20 * DAY);
    let notice = amendment(t, "dpa", served, at_second(now_s().as_second() + 40 * DAY)).await;
    wait_decision(t, &acme.account, &notice, Decision::Pending).await;
    let moved_at = now_s();
    notices
        .patch(
            &notice,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "effectiveAt": rfc3339(at_second(moved_at.as_second() + 5 * DAY)) } })),
        )
        .await
        .expect("effectiveAt may change");
    let n = wait_for(
        notices,
        &notice,
        "be served again",
        TIMEOUT,
        |n: &DeprecationNotice| {
            n.status.as_ref().is_some_and(|s| s.reserved_at.is_some())
                && n.status.as_ref().and_then(|s| s.observed_generation) == n.metadata.generation
        },
    )
    .await;
    let st = n.status.unwrap();
    let again = st.reserved_at.unwrap().0;
    assert!(
        again >= moved_at,
        "served again at {again}, after the change at {moved_at}"
    );
    assert_eq!(
        st.served_at.map(|t| t.0),
        Some(served),
        "the first service is never moved"
    );
    let thirty = at_second(again.as_second() + 30 * DAY);
    assert!(
        st.rejection_deadline.as_ref().map(|d| d.0) >= Some(thirty),
        "30 days to reject from the new service: {:?}",
        st.rejection_deadline
    );
    let w = st
        .conditions
        .iter()
        .find(|c| c.type_ == "NoticeWindowSatisfied")
        .unwrap();
    assert!(w.message.contains("served again"), "{}", w.message);
    let a = wait_decision(t, &acme.account, &notice, Decision::Pending).await;
    let row = row_of(&a, &notice);
    assert!(
        row.rejection_deadline.as_ref().map(|d| d.0) >= Some(thirty),
        "{row:?}"
    );
}

/// §2.3 does not reach amendments: an exemption on one is refused.
async fn assert_an_exempt_amendment_is_refused(t: &TestCtx) {
    // §2.3 does not reach amendments: an exemption on one is refused.
    let exempt = t.name("exempt");
    let e = api_error(
        "an exempt Amendment",
        covenant_e2e::apply_yaml(&t.client, &{
            let mut n = fixtures::notice(
                &exempt,
                NoticeType::Amendment,
                "Required by law.",
                now_s(),
                &[(GROUP, &t.suffix)],
            );
            n.spec.exemption = Some(Exemption::LegalRequirement);
            n.manifest()
        })
        .await
        .map_err(|e| match e.downcast::<kube::Error>() {
            Ok(k) => k,
            Err(e) => panic!("not an API error: {e:#}"),
        }),
    );
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.message.contains("§2.3 does not reach amendments"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_suspended_tenant_can_still_answer() {
    let t = TestCtx::new("answer-suspended").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let suspension = t.name("aup");
    t.track(SUSPENSIONS, &suspension);
    t.apply(&fixtures::suspension(
        &suspension,
        &acme.account,
        "AcceptableUsePolicy",
        &format!("Abuse report {} confirmed", t.suffix),
        json!({}),
    ))
    .await;
    let alice = impersonate(&acme.admin, &[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(alice.clone(), &acme.ns);
    // The namespace is read-only...
    eventually("the namespace is read-only", TIMEOUT, || async {
        let cm: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "generateName": "probe-" } })).unwrap();
        match cms.create(&PostParams::default(), &cm).await {
            // Refused by RBAC (the administrators hold the read-only role while suspended) or by
            // the read-only policy.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // ...but the right to reject an amendment is not lost to a suspension.
    answer(&alice, &acme.ns, "reject", &notice, "Reject")
        .await
        .expect("a suspended tenant answers a notice");
    wait_verdict(&t, &acme.ns, "reject", "True", "Stands").await;
    wait_decision(&t, &acme.account, &notice, Decision::Rejected).await;
}

#[tokio::test]
async fn administrators_grant_and_end_access_for_their_own_people() {
    let t = TestCtx::new("answer-org").await;
    let domain = format!("acme-{}.example", t.suffix);
    let acme = t
        .tenant("acme")
        .label(GROUP, &t.suffix)
        .spec(|s| {
            s.organization = Some(OrganizationSpec {
                domains: vec![domain.clone()],
            })
        })
        .await;
    let carol = format!("carol@{domain}");
    let mallory = format!("mallory@evil-{}.example", t.suffix);
    let alice = impersonate(&acme.admin, &[]).await;
    let bindings: Api<RoleBinding> = Api::namespaced(alice.clone(), &acme.ns);
    let view = |name: &str, user: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
        }))
        .unwrap()
    };
    // The administrator grants one of its own people access, without the platform...
    bindings
        .create(&PostParams::default(), &view("carol", &carol))
        .await
        .expect("an administrator binds a person of its organization's domain");
    eventually("carol can read pods", TIMEOUT, || async {
        can(&t.client, &carol, &[], "list", "pods", "", &acme.ns)
            .await
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    // ...but not an outsider, whom only the platform can consent to (allowedSubjects).
    let e = api_error(
        "an administrator binding an outsider",
        bindings
            .create(&PostParams::default(), &view("mallory", &mallory))
            .await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    // The administrator ends the access itself.
    bindings
        .delete("carol", &Default::default())
        .await
        .expect("an administrator ends access");
    eventually("carol cannot read pods", TIMEOUT, || async {
        (!can(&t.client, &carol, &[], "list", "pods", "", &acme.ns).await)
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    // When the platform drops the domain, the organization's people lose what they were given.
    bindings
        .create(&PostParams::default(), &view("carol", &carol))
        .await
        .expect("bound again");
    eventually("carol can read pods again", TIMEOUT, || async {
        can(&t.client, &carol, &[], "list", "pods", "", &acme.ns)
            .await
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    // The access review lists the domain among what gives access.
    let a = accounts.get(&acme.account).await.unwrap();
    let review = covenant_e2e::condition(&a, "AccessReviewCurrent").expect("AccessReviewCurrent");
    assert!(
        review.message.contains(&format!("*@{domain}")),
        "{}",
        review.message
    );
    accounts
        .patch(
            &acme.account,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "organization": null } })),
        )
        .await
        .expect("the platform drops the domain");
    eventually("carol's access is withdrawn", TIMEOUT, || async {
        (!can(&t.client, &carol, &[], "list", "pods", "", &acme.ns).await)
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
}

#[tokio::test]
async fn the_timeline_from_the_cluster_lists_the_deadline_and_the_accounts_it_touches() {
    let t = TestCtx::new("answer-timeline").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let effective = at_second(served.as_second() + 40 * DAY);
    let notice = amendment(&t, "dpa", served, effective).await;
    wait_decision(&t, &acme.account, &notice, Decision::Pending).await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    wait_for(
        &notices,
        &notice,
        "count the account as Pending",
        TIMEOUT,
        |n: &DeprecationNotice| {
            n.status
                .as_ref()
                .and_then(|s| s.counts.as_ref())
                .is_some_and(|c| c.pending == 1)
        },
    )
    .await;
    // The same instant and the account's conditions are series of /metrics, read when scraped.
    let deadline = format!(
        "covenant_deadline_timestamp_seconds{{account=\"{}\",what=\"rejection_deadline\",object=\"{notice}\"}} {}",
        acme.account,
        effective.as_second()
    );
    let ready = format!(
        "covenant_account_condition{{account=\"{}\",type=\"Ready\",status=\"True\"}} 1",
        acme.account
    );
    eventually(
        "the operator's metrics show the tenant",
        TIMEOUT,
        || async {
            let m = covenant_e2e::operator::metrics();
            if m.contains(&deadline) && m.contains(&ready) {
                Ok(())
            } else {
                Err(format!("{deadline} or {ready} not in /metrics"))
            }
        },
    )
    .await;
    // `covenant timeline` as a platform engineer runs it, with the admin kubeconfig.
    let bin = covenant_e2e::cluster::profile_dir().join("covenant");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .arg("timeline")
            .args(args)
            .env("KUBECONFIG", &covenant_e2e::cluster::cluster().kubeconfig)
            .output()
            .expect("covenant timeline runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = run(&[]);
    let line = table
        .lines()
        .find(|l| l.contains("rejection-deadline") && l.contains(&notice))
        .unwrap_or_else(|| panic!("no rejection deadline of {notice} in:\n{table}"));
    assert!(line.starts_with(&rfc3339(effective)), "{line}");
    assert!(line.contains(&acme.account), "{line}");
    let ics = run(&["--ics", "-"]);
    let mut parser = ical::IcalParser::new(ics.as_bytes());
    let calendar = parser.next().expect("a calendar").expect("parses");
    let ours = calendar
        .events
        .iter()
        .find(|e| {
            e.properties.iter().any(|p| {
                p.name == "SUMMARY"
                    && p.value.as_deref()
                        == Some(&format!("rejection-deadline: DeprecationNotice/{notice}"))
            })
        })
        .expect("the deadline is an event");
    let start = ours
        .properties
        .iter()
        .find(|p| p.name == "DTSTART")
        .and_then(|p| p.value.clone());
    assert_eq!(
        start,
        Some(effective.strftime("%Y%m%dT%H%M%SZ").to_string())
    );
}

/// A NoticeResponse whose metadata is `meta` (merged over its name).
fn response_with(name: &str, notice: &str, decision: &str, meta: Value) -> NoticeResponse {
    let mut r = serde_json::to_value(response(name, notice, decision)).unwrap();
    if let (Value::Object(m), Value::Object(extra)) = (&mut r["metadata"], meta) {
        m.extend(extra);
    }
    serde_json::from_value(r).expect("a NoticeResponse")
}

#[tokio::test]
async fn an_answer_cannot_be_withdrawn_through_the_garbage_collector_nor_pinned_with_a_finalizer() {
    let t = TestCtx::new("answer-gc").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let alice = impersonate(&acme.admin, &[]).await;
    let responses: Api<NoticeResponse> = Api::namespaced(alice.clone(), &acme.ns);

    // The administrator accepts, and makes the answer a dependent of a ConfigMap it may delete: once
    // the deadline has passed, deleting the ConfigMap would have the garbage collector delete the
    // acceptance, and an earlier rejection would stand in its place, changed after the deadline. So
    // an answer has no owner: the API server refuses one with ownerReferences.
    let anchors: Api<ConfigMap> = Api::namespaced(alice.clone(), &acme.ns);
    let anchor = anchors
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "anchor" } })).unwrap(),
        )
        .await
        .expect("the administrator makes a ConfigMap");
    let owned = response_with(
        "owned",
        &notice,
        "Accept",
        json!({ "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "anchor",
            "uid": anchor.metadata.uid.clone().unwrap()
        }] }),
    );
    if let Ok(made) = responses.create(&PostParams::default(), &owned).await {
        wait_verdict(&t, &acme.ns, "owned", "True", "Stands").await;
        anchors
            .delete("anchor", &Default::default())
            .await
            .expect("the administrator deletes its ConfigMap");
        let admin: Api<NoticeResponse> = Api::namespaced(t.client.clone(), &acme.ns);
        let mut withdrawn = false;
        for _ in 0..100 {
            if admin
                .get_opt("owned")
                .await
                .expect("reading the answer")
                .is_none()
            {
                withdrawn = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "an answer with ownerReferences was accepted ({:?}){}",
            made.metadata.owner_references,
            if withdrawn {
                ", and the garbage collector withdrew it when its owner was deleted"
            } else {
                ""
            }
        );
    }

    // Nor a finalizer: nobody may update an answer to remove it, so the namespace could never be
    // deleted (retention's end, Delete policy) while the answer stayed.
    let pinned = response_with(
        "pinned",
        &notice,
        "Reject",
        json!({ "finalizers": ["example.com/forever"] }),
    );
    let e = api_error(
        "an answer with a finalizer",
        responses.create(&PostParams::default(), &pinned).await,
    );
    assert_eq!(e.code, 403, "{e:?}");

    // A plain answer still goes through, and stands.
    answer(&alice, &acme.ns, "plain", &notice, "Reject")
        .await
        .expect("a plain answer");
    wait_verdict(&t, &acme.ns, "plain", "True", "Stands").await;
}

#[tokio::test]
async fn an_answer_does_not_tell_a_tenant_which_notices_other_tenants_were_served() {
    let t = TestCtx::new("answer-probe").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let other = t.tenant("other").label(GROUP, &t.suffix).await;
    // A notice for the other tenant alone (its name may say what it is about).
    Api::<Account>::all(t.client.clone())
        .patch(
            &other.account,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "labels": { "e2e-answer-target": other.account } } }),
            ),
        )
        .await
        .expect("labelling the other account");
    let theirs = t.name("terminate-other");
    t.track(NOTICES, &theirs);
    t.apply(&fixtures::notice(
        &theirs,
        NoticeType::Amendment,
        "Your plan ends.",
        at_second(now_s().as_second() + 200 * DAY),
        &[("e2e-answer-target", &other.account)],
    ))
    .await;
    let missing = t.name("no-such-notice");
    let alice = impersonate(&acme.admin, &[]).await;
    // acme's administrator answers both names: what it learns must be the same for a notice that
    // exists for someone else as for one that does not exist at all (it may not read notices).
    answer(&alice, &acme.ns, "probe-theirs", &theirs, "Accept")
        .await
        .expect("an administrator may answer any name");
    answer(&alice, &acme.ns, "probe-missing", &missing, "Accept")
        .await
        .expect("an administrator may answer any name");
    let said = |r: NoticeResponse, name: &str| {
        let c = r
            .status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Honoured")
            .unwrap();
        (c.status, c.reason, c.message.replace(name, "<notice>"))
    };
    let mine: Api<NoticeResponse> = Api::namespaced(alice.clone(), &acme.ns);
    let judged = |r: &NoticeResponse| {
        r.status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Honoured"))
    };
    let a = wait_for(
        &mine,
        "probe-theirs",
        "say what became of it",
        TIMEOUT,
        judged,
    )
    .await;
    let b = wait_for(
        &mine,
        "probe-missing",
        "say what became of it",
        TIMEOUT,
        judged,
    )
    .await;
    let (a, b) = (said(a, &theirs), said(b, &missing));
    assert_eq!(
        a, b,
        "a notice served on another tenant looks, to acme, like one that does not exist"
    );
}

/// An account with a second namespace (`policy`: its deletionPolicy) whose administrator rejects a
/// fresh amendment there, until the account's status says Rejected; then the platform drops that
/// namespace from the account. Returns the tenant, the dropped namespace and the notice.
async fn rejected_in_a_dropped_namespace(
    t: &TestCtx,
    policy: DeletionPolicy,
) -> (Tenant, String, String) {
    let base = t.account("acme");
    let dev = format!("{base}-dev");
    let acme = t
        .tenant("acme")
        .label(GROUP, &t.suffix)
        .namespace_names(&[&base, &dev])
        .spec(move |s| s.deletion_policy = policy)
        .await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let alice = impersonate(&acme.admin, &[]).await;
    answer(&alice, &dev, "reject", &notice, "Reject")
        .await
        .expect("an administrator answers in any of its account's namespaces");
    wait_verdict(t, &dev, "reject", "True", "Stands").await;
    wait_decision(t, &acme.account, &notice, Decision::Rejected).await;
    Api::<Account>::all(t.client.clone())
        .patch(
            &acme.account,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "namespaces": [acme.ns] } })),
        )
        .await
        .expect("dropping a namespace from the account");
    (acme, dev, notice)
}

#[tokio::test]
async fn an_answer_given_in_a_namespace_the_account_later_drops_still_stands() {
    let t = TestCtx::new("answer-drop").await;
    // The platform later drops the namespace the rejection was given in (it is retained, read-only,
    // still Covenant's for the account's UID). The rejection was given by the account's
    // administrators while it was theirs: it still stands, in the Account's status as in the
    // notice's and the response's, and is not turned into a silence deemed acceptance at the deadline.
    let (acme, dev, notice) = rejected_in_a_dropped_namespace(&t, DeletionPolicy::Retain).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(t.client.clone());
    wait_for(&ns, &dev, "be retained", TIMEOUT, |n| {
        covenant_e2e::fixtures::label(n, "covenant.dev/read-only").as_deref() == Some("retained")
    })
    .await;
    let a = wait_for(
        &accounts,
        &acme.account,
        "have reconciled the dropped namespace",
        TIMEOUT,
        |a: &Account| {
            a.status
                .as_ref()
                .is_some_and(|s| s.namespaces == vec![acme.ns.clone()])
        },
    )
    .await;
    // Give the account a moment to fold its answers again, then judge.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let row = row_of(&accounts.get(&acme.account).await.unwrap(), &notice);
    assert_eq!(
        (row.decision, row.answered_by.as_deref()),
        (Decision::Rejected, Some(format!("{dev}/reject").as_str())),
        "the account's decision after dropping {dev} (status {:?})",
        a.status.map(|s| s.namespaces)
    );
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    let n = notices.get(&notice).await.unwrap();
    let counts = n.status.and_then(|s| s.counts);
    assert_eq!(
        counts.as_ref().map(|c| c.rejected),
        Some(1),
        "the notice counts the account as Rejected: {counts:?}"
    );
}

#[tokio::test]
async fn a_notice_in_effect_cannot_be_shortened_after_the_fact() {
    let t = TestCtx::new("answer-after").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    // Served 60 days ago, effective in a few seconds: the rejection deadline is then.
    let served = at_second(now_s().as_second() - 60 * DAY);
    let effective = at_second(now_s().as_second() + 8);
    let notice = amendment(&t, "dpa", served, effective).await;
    let alice = impersonate(&acme.admin, &[]).await;
    answer(&alice, &acme.ns, "reject", &notice, "Reject")
        .await
        .expect("a rejection in time");
    wait_verdict(&t, &acme.ns, "reject", "True", "Stands").await;
    wait_decision(&t, &acme.account, &notice, Decision::Rejected).await;
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    wait_for(
        &notices,
        &notice,
        "be in effect",
        TIMEOUT,
        |n: &DeprecationNotice| {
            n.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Effective" && c.status == "True")
            })
        },
    )
    .await;

    // Once it is in effect, the platform moves effectiveAt to the earliest instant its service
    // allowed (30 days after servedAt). That is no longer serving it again, but neither may it move
    // the rejection deadline back past a rejection given in time: the rejection still stands.
    notices
        .patch(
            &notice,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "effectiveAt": rfc3339(at_second(served.as_second() + 30 * DAY)) } }),
            ),
        )
        .await
        .expect("editing effectiveAt");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = wait_verdict(&t, &acme.ns, "reject", "True", "Stands").await;
    assert_eq!(r.status.unwrap().account_decision, Some(Decision::Rejected));
    wait_decision(&t, &acme.account, &notice, Decision::Rejected).await;
}

#[tokio::test]
async fn many_answers_do_not_make_the_operator_rewrite_every_earlier_one() {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let t = TestCtx::new("answer-churn").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let alice = impersonate(&acme.admin, &[]).await;
    answer(&alice, &acme.ns, "first", &notice, "Accept")
        .await
        .expect("a first answer");
    let first = wait_verdict(&t, &acme.ns, "first", "True", "Stands").await;

    // Every status write to the first answer from now on.
    let api: Api<NoticeResponse> = Api::namespaced(t.client.clone(), &acme.ns);
    let rv = first.metadata.resource_version.clone().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().fields("metadata.name=first"), &rv)
        .await
        .expect("watching the first answer")
        .boxed();
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = {
        let writes = writes.clone();
        tokio::spawn(async move {
            while let Some(e) = stream.next().await {
                if let Ok(WatchEvent::Modified(_)) = e {
                    writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };

    // A tenant changes its mind again and again (each answer a second apart, as creationTimestamp
    // has whole seconds). Each answer costs the operator a bounded number of writes: the first one
    // is superseded once, not rewritten each time the account's decision flips. Otherwise a tenant
    // with many namespaces of 50 answers each makes the operator write without end (quadratically),
    // slowing what it owes every other tenant.
    const LATER: usize = 10;
    for i in 0..LATER {
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let d = if i % 2 == 0 { "Reject" } else { "Accept" };
        answer(&alice, &acme.ns, &format!("later-{i}"), &notice, d)
            .await
            .expect("a later answer");
    }
    let last = format!("later-{}", LATER - 1);
    wait_verdict(&t, &acme.ns, &last, "True", "Stands").await;
    wait_verdict(&t, &acme.ns, "first", "False", "Superseded").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    counter.abort();
    let writes = writes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        writes <= 2,
        "the first answer was rewritten {writes} times for {LATER} later answers"
    );
}

#[tokio::test]
async fn an_answer_given_in_a_namespace_that_is_later_deleted_still_stands() {
    let t = TestCtx::new("answer-deleted").await;
    // deletionPolicy Delete: a namespace dropped from the account is deleted, its answers with it
    // (as a retained one is when its retention ends). The rejection was the account's answer, given
    // in time: deleting where it was written does not undo it (after the deadline the account would
    // silently become DeemedAccepted).
    let (acme, dev, notice) = rejected_in_a_dropped_namespace(&t, DeletionPolicy::Delete).await;
    let accounts: Api<Account> = Api::all(t.client.clone());
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(t.client.clone());
    wait_gone(&ns, &dev, false, TIMEOUT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let row = row_of(&accounts.get(&acme.account).await.unwrap(), &notice);
    assert_eq!(
        row.decision,
        Decision::Rejected,
        "the account's decision once {dev}, where it rejected, is deleted"
    );
}

#[tokio::test]
async fn an_answer_to_a_deleted_notice_does_not_answer_a_new_notice_of_the_same_name() {
    let t = TestCtx::new("answer-reissue").await;
    let acme = t.tenant("acme").label(GROUP, &t.suffix).await;
    let served = at_second(now_s().as_second() - DAY);
    let notice = amendment(&t, "dpa", served, at_second(served.as_second() + 40 * DAY)).await;
    let alice = impersonate(&acme.admin, &[]).await;
    answer(&alice, &acme.ns, "accept-v1", &notice, "Accept")
        .await
        .expect("the administrator accepts the first notice");
    wait_decision(&t, &acme.account, &notice, Decision::Accepted).await;

    // The platform withdraws the notice and issues another under the same name (other terms).
    let notices: Api<DeprecationNotice> = Api::all(t.client.clone());
    notices
        .delete(&notice, &Default::default())
        .await
        .expect("deleting the notice");
    wait_gone(&notices, &notice, false, TIMEOUT).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = amendment(
        &t,
        "dpa",
        now_s(),
        at_second(now_s().as_second() + 40 * DAY),
    )
    .await;
    assert_eq!(again, notice);
    // The acceptance was given to terms that no longer exist, before this notice was issued: the
    // account has not answered this one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_decision(&t, &acme.account, &notice, Decision::Pending).await;
    wait_verdict(&t, &acme.ns, "accept-v1", "False", "BeforeNotice").await;
}

#[tokio::test]
async fn a_tenant_that_answered_many_times_can_still_answer_a_new_notice() {
    let t = TestCtx::new("answer-many").await;
    // On the package Covenant ships (it caps NoticeResponses per namespace), one namespace.
    let Tenant { account, admin, .. } = t
        .tenant("acme")
        .package("standard")
        .label(GROUP, &t.suffix)
        .await;
    let served = at_second(now_s().as_second() - DAY);
    let old = amendment(&t, "old", served, at_second(served.as_second() + 40 * DAY)).await;
    let alice = impersonate(&admin, &[]).await;
    // Years of notices, answered (and reconsidered) one by one: here, 50 answers to one of them.
    // The tenant cannot delete an answer, so they all stay.
    let mut made = 0;
    for i in 0..50 {
        let d = if i % 2 == 0 { "Reject" } else { "Accept" };
        if answer(&alice, &account, &format!("old-{i}"), &old, d)
            .await
            .is_err()
        {
            break;
        }
        made += 1;
    }
    // A new amendment: the tenant's right to reject it is not lost to the answers it gave before.
    let new = amendment(
        &t,
        "new",
        now_s(),
        at_second(now_s().as_second() + 40 * DAY),
    )
    .await;
    let r = answer(&alice, &account, "reject-new", &new, "Reject").await;
    assert!(
        r.is_ok(),
        "after {made} earlier answers the administrator cannot reject a new notice: {:?}",
        r.err()
    );
}
