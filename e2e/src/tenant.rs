//! The one fixture of a tenant: [`TestCtx::tenant`] builds an Account (and, unless told to use
//! another, a SupportPackage of its own) from the operator's own types, applies it and waits until it
//! is Ready.
//!
//! ```ignore
//! let acme = t.tenant("acme").namespaces(2).spec(|s| s.network = Some(telephony)).await;
//! let on_shared = t.tenant("web").package(&pkg).admin(&alice).retain().await;
//! ```

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use covenant::api::{Account, AccountSpec, DeletionPolicy, SupportPackage, SupportPackageSpec};
use kube::{Api, Client};

use crate::{TIMEOUT, TestCtx, fixtures, k8s};

/// A tenant a test made with [`TestCtx::tenant`].
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The Account's name.
    pub account: String,
    /// Its first namespace (the Account's name unless namespaces were declared).
    pub ns: String,
    /// Every namespace it declared (just [`Tenant::ns`] when it declared none).
    pub namespaces: Vec<String>,
    /// Its first administrator (a User).
    pub admin: String,
    /// Its package (None: the package marked `default: true`).
    pub package: Option<String>,
    /// The Account as the test applied it: clone it, change it and apply it again to edit the spec
    /// (the tests' applies share one field manager, so a field left out is dropped).
    pub applied: Account,
}

impl Tenant {
    /// A client acting as the tenant's (first) administrator.
    pub async fn admin_client(&self) -> Client {
        k8s::impersonate(&self.admin, &[]).await
    }

    /// The package's name; panics for a tenant on the default package.
    pub fn package(&self) -> &str {
        self.package
            .as_deref()
            .expect("the tenant is on a package the test named")
    }
}

type SpecEdit<'a, T> = Box<dyn FnOnce(&mut T) + Send + 'a>;

enum PackageChoice<'a> {
    /// A package `<base>-pkg-<suffix>` of its own: [`fixtures::package`] with the default quota,
    /// then these edits.
    Own(Vec<SpecEdit<'a, SupportPackageSpec>>),
    /// A package the test made.
    Named(String),
    /// No `supportPackage`: the package marked `default: true`.
    ClusterDefault,
}

enum Namespaces {
    /// None declared: one named after the account.
    Default,
    /// `<base>-<i>-<suffix>` for i in 0..n.
    Numbered(usize),
    /// These names.
    Named(Vec<String>),
}

/// A tenant being described; `.await` it to apply it (see [`TestCtx::tenant`]).
#[must_use = "a tenant is made only when the builder is awaited"]
pub struct TenantBuilder<'a> {
    ctx: &'a TestCtx,
    base: String,
    package: PackageChoice<'a>,
    namespaces: Namespaces,
    admins: Option<Vec<String>>,
    labels: BTreeMap<String, String>,
    deletion_policy: DeletionPolicy,
    edits: Vec<SpecEdit<'a, AccountSpec>>,
    wait_ready: bool,
    wait_default_service_accounts: bool,
    tracked: bool,
}

impl TestCtx {
    /// A tenant: the Account `<base>-<suffix>` (deleted after the test, `deletionPolicy: Delete`, so
    /// its namespaces go with it) administered by the User `<base>-admin-<suffix>`, on a package of
    /// its own `<base>-pkg-<suffix>` ([`fixtures::package`] with [`fixtures::default_quota`]); made
    /// when awaited, which returns once the Account is Ready for its generation. The builder's
    /// methods change each of these.
    pub fn tenant(&self, base: &str) -> TenantBuilder<'_> {
        TenantBuilder {
            ctx: self,
            base: base.to_string(),
            package: PackageChoice::Own(Vec::new()),
            namespaces: Namespaces::Default,
            admins: None,
            labels: BTreeMap::new(),
            deletion_policy: DeletionPolicy::Delete,
            edits: Vec::new(),
            wait_ready: true,
            wait_default_service_accounts: false,
            tracked: true,
        }
    }
}

impl<'a> TenantBuilder<'a> {
    /// On the package `name` (which the test made) instead of a package of its own.
    pub fn package(mut self, name: &str) -> Self {
        self.package = PackageChoice::Named(name.to_string());
        self
    }

    /// On the cluster's default package (no `supportPackage`).
    pub fn default_package(mut self) -> Self {
        self.package = PackageChoice::ClusterDefault;
        self
    }

    /// On a package of its own whose spec `edit` changes (after the default quota and limits).
    pub fn own_package(mut self, edit: impl FnOnce(&mut SupportPackageSpec) + Send + 'a) -> Self {
        match &mut self.package {
            PackageChoice::Own(edits) => edits.push(Box::new(edit)),
            _ => self.package = PackageChoice::Own(vec![Box::new(edit)]),
        }
        self
    }

    /// Declares `n` namespaces `<base>-<i>-<suffix>` (i from 0).
    pub fn namespaces(mut self, n: usize) -> Self {
        self.namespaces = Namespaces::Numbered(n);
        self
    }

    /// Declares these namespaces (full names; the test makes them unique, e.g. with
    /// [`TestCtx::name`] or [`TestCtx::namespace`]).
    pub fn namespace_names<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.namespaces = Namespaces::Named(names.iter().map(|n| n.as_ref().to_string()).collect());
        self
    }

    /// Administered by the User `name` (a full name) instead of `<base>-admin-<suffix>`; call again
    /// for more administrators.
    pub fn admin(mut self, name: &str) -> Self {
        self.admins
            .get_or_insert_with(Vec::new)
            .push(name.to_string());
        self
    }

    /// With no administrator at all.
    pub fn no_admins(mut self) -> Self {
        self.admins = Some(Vec::new());
        self
    }

    /// With the label `key: value` on the Account.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// `deletionPolicy: Retain` (its namespaces are released, read-only, when it is deleted).
    pub fn retain(mut self) -> Self {
        self.deletion_policy = DeletionPolicy::Retain;
        self
    }

    /// Changes the Account's spec (after the package, namespaces, administrators and deletion
    /// policy are set).
    pub fn spec(mut self, edit: impl FnOnce(&mut AccountSpec) + Send + 'a) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Returns as soon as the Account is applied (for an Account that will not become Ready, or
    /// whose readiness is what the test watches).
    pub fn unready(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Also waits until each namespace has its `default` ServiceAccount (a pod needs it).
    pub fn with_default_service_accounts(mut self) -> Self {
        self.wait_default_service_accounts = true;
        self
    }

    /// Not deleted after the test (for an Account that must outlive it, e.g. across an uninstall of
    /// Covenant on a cluster of the test binary's own).
    pub fn untracked(mut self) -> Self {
        self.tracked = false;
        self
    }

    async fn make(self) -> Tenant {
        let t = self.ctx;
        let base = self.base;
        let package = match self.package {
            PackageChoice::Own(edits) => {
                let name = t.package(&format!("{base}-pkg"));
                let mut p: SupportPackage = fixtures::package(&name, fixtures::default_quota());
                for edit in edits {
                    edit(&mut p.spec);
                }
                t.apply(&p).await;
                Some(name)
            }
            PackageChoice::Named(name) => Some(name),
            PackageChoice::ClusterDefault => None,
        };
        let account = if self.tracked {
            t.account(&base)
        } else {
            t.name(&base)
        };
        let namespaces = match self.namespaces {
            Namespaces::Default => Vec::new(),
            Namespaces::Numbered(n) => (0..n).map(|i| t.name(&format!("{base}-{i}"))).collect(),
            Namespaces::Named(names) => names,
        };
        let admins = self
            .admins
            .unwrap_or_else(|| vec![t.name(&format!("{base}-admin"))]);
        let mut applied = Account::new(
            &account,
            AccountSpec {
                support_package: package.clone(),
                namespaces: namespaces.clone(),
                administrators: admins.iter().map(|a| fixtures::user(a)).collect(),
                deletion_policy: self.deletion_policy,
                ..fixtures::account_spec()
            },
        );
        if !self.labels.is_empty() {
            applied.metadata.labels = Some(self.labels);
        }
        for edit in self.edits {
            edit(&mut applied.spec);
        }
        t.apply(&applied).await;
        if self.wait_ready {
            k8s::wait_account_ready(&t.client, &account).await;
        }
        let namespaces = if namespaces.is_empty() {
            vec![account.clone()]
        } else {
            namespaces
        };
        if self.wait_default_service_accounts {
            for ns in &namespaces {
                let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
                    Api::namespaced(t.client.clone(), ns);
                k8s::wait_for(&sa, "default", "be created", TIMEOUT, |_| true).await;
            }
        }
        Tenant {
            ns: namespaces[0].clone(),
            namespaces,
            admin: admins.first().cloned().unwrap_or_default(),
            package,
            account,
            applied,
        }
    }
}

impl<'a> IntoFuture for TenantBuilder<'a> {
    type Output = Tenant;
    type IntoFuture = Pin<Box<dyn Future<Output = Tenant> + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.make())
    }
}
