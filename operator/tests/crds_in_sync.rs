//! `crds/` is generated from the Rust types and must never drift from them.

use std::path::Path;

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut stale = Vec::new();
    for (file, yaml) in covenant::api::crd_files() {
        let on_disk = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        if on_disk != yaml {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "crds/ is out of date for {stale:?}: run `make crds` and commit the result"
    );
}

#[test]
fn every_kind_but_the_tenants_answers_is_cluster_scoped_in_the_covenant_category() {
    for crd in covenant::api::crds() {
        assert_eq!(crd.spec.group, "covenant.dev");
        // Tenants answer notices in their own namespaces; everything else is the platform's.
        let scope = if crd.spec.names.kind == "NoticeResponse" {
            "Namespaced"
        } else {
            "Cluster"
        };
        assert_eq!(crd.spec.scope, scope, "{}", crd.spec.names.kind);
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["covenant".to_string()][..])
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "status subresource"
        );
        assert!(
            crd.spec
                .names
                .short_names
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        );
    }
}
