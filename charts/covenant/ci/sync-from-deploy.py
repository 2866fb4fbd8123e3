#!/usr/bin/env python3
"""The chart's admission policies and tenant roles are deploy/'s, with the release's operator identity
and the chart's labels; its CRDs (templates/crds/) are crds/', behind crds.install and with the
crds.keep annotation. This writes them (or, with --check, fails when they differ; --check-crds checks
only the CRDs). One source: edit deploy/ (or the Rust types, then `make crds`), then run
  python3 charts/covenant/ci/sync-from-deploy.py"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
OPERATOR = "system:serviceaccount:covenant-system:covenant"
RELEASE_OPERATOR = (
    'system:serviceaccount:{{ .Release.Namespace }}:{{ include "covenant.serviceAccountName" . }}'
)
FILES = {
    "admission-policy.yaml": "Third-party access: whom a RoleBinding in a tenant namespace may name, and no binding of\n"
    "Covenant's roles (deploy/admission-policy.yaml, whose header documents it).",
    "managed-objects-policy.yaml": "Protects what Covenant manages in tenant namespaces and the covenant-* names\n"
    "(deploy/managed-objects-policy.yaml, whose header documents it).",
    "read-only-policy.yaml": "Suspended and retained namespaces are read-only in the API server\n"
    "(deploy/read-only-policy.yaml, whose header documents it and what admission cannot see).",
    "namespace-labels-policy.yaml": "Only the operator sets covenant.dev/* labels and annotations on namespaces, and the\n"
    "Pod Security labels of tenant namespaces (deploy/namespace-labels-policy.yaml).",
    "role-aggregation-policy.yaml": "Only Covenant's covenant-tenant-admin-rules extends the tenant-admin role by\n"
    "aggregation (deploy/role-aggregation-policy.yaml, whose header documents it).",
    "token-secrets-policy.yaml": "No ServiceAccount token that outlives a withdrawal of access in a tenant namespace\n"
    "(deploy/token-secrets-policy.yaml, whose header documents it).",
    "tenant-services-policy.yaml": "Tenants' Services cannot route traffic around NetworkPolicies\n"
    "(deploy/tenant-services-policy.yaml, whose header documents it).",
    "notice-responses-policy.yaml": "Only an account's administrators answer notices for it, in its namespaces\n"
    "(deploy/notice-responses-policy.yaml, whose header documents it).",
    "account-finalizer-policy.yaml": "The API server gives every new Account Covenant's finalizer, saving the operator a\n"
    "request per tenant; rendered only where admissionregistration.k8s.io/v1 MutatingAdmissionPolicy is served\n"
    "(deploy/account-finalizer-policy.yaml, whose header documents it).",
    "hostnames-policy.yaml": "No hostname is held by two tenants: Ingresses are checked against the claims the operator\n"
    "records in the release namespace (deploy/hostnames-policy.yaml, whose header documents it).",
    "workload-policies-policy.yaml": "What a tier's tenants may use (registries, classes, forced node labels, tolerations),\n"
    "read from the namespace annotations Covenant writes (deploy/workload-policies-policy.yaml).",
    "workload-defaults-policy.yaml": "The tier's forced node labels and default classes, set by the API server; rendered only\n"
    "where admissionregistration.k8s.io/v1 MutatingAdmissionPolicy is served (deploy/workload-defaults-policy.yaml).",
    "account-policies-policy.yaml": "An Account may narrow its package's policies, never widen them\n"
    "(deploy/account-policies-policy.yaml, whose header documents it).",
    "self-service-namespaces-policy.yaml": "Who may create and delete namespaces for an Account themselves (self-service)\n"
    "(deploy/self-service-namespaces-policy.yaml, whose header documents it).",
    "tenant-network-policies-policy.yaml": "Tenants' own NetworkPolicies can only narrow Covenant's guardrails\n"
    "(deploy/tenant-network-policies-policy.yaml, whose header documents it).",
    "tenant-roles.yaml": "The roles Covenant binds in tenant namespaces (deploy/tenant-roles.yaml, whose header\n"
    "documents them; the names are fixed because the operator binds them by name).",
}

# Files rendered only where the API server serves their kind (apiVersion/Kind).
REQUIRES = {
    "account-finalizer-policy.yaml": "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
    "workload-defaults-policy.yaml": "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
}


def render(name: str, header: str) -> str:
    lines = (ROOT / "deploy" / name).read_text().split("\n")
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or lines[i] == ""):
        i += 1
    body = "\n".join(lines[i:]).replace(OPERATOR, RELEASE_OPERATOR)
    # The hostname claims live in the operator's namespace (a binding's paramRef names it).
    body = body.replace("  paramRef:\n    namespace: covenant-system\n", "  paramRef:\n    namespace: {{ .Release.Namespace }}\n")
    body = body.replace(
        "  labels:\n    app.kubernetes.io/part-of: covenant\n",
        '  labels:\n    {{- include "covenant.labels" . | nindent 4 }}\n',
    )
    head = "{{- /*\nGenerated from deploy/ by charts/covenant/ci/sync-from-deploy.py: edit deploy/.\n" + header + "\n*/ -}}\n"
    if name in REQUIRES:
        return head + "{{- if .Capabilities.APIVersions.Has \"" + REQUIRES[name] + "\" }}\n" + body.rstrip("\n") + "\n{{- end }}\n"
    return head + body


def render_crd(path: pathlib.Path) -> str:
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or lines[i] == ""):
        i += 1
    body = "\n".join(lines[i:])
    if "{{" in body or "}}" in body:
        raise SystemExit(f"{path} holds '{{{{' or '}}}}', which Helm would read as a template")
    head = f"metadata:\n  name: {path.name.removesuffix('.yaml')}\n"
    if head not in body:
        raise SystemExit(f"{path}: expected its metadata to start with the name")
    body = body.replace(
        head,
        head + "  {{- if .Values.crds.keep }}\n  annotations:\n"
        "    # helm uninstall leaves the CRD, and every object of its kind (crds.keep).\n"
        "    helm.sh/resource-policy: keep\n  {{- end }}\n"
        '  labels:\n    {{- include "covenant.labels" . | nindent 4 }}\n',
        1,
    )
    return (
        "{{- /*\nGenerated from crds/ by charts/covenant/ci/sync-from-deploy.py: change the Rust types, run\n"
        "`make crds`, then the script.\n*/ -}}\n{{- if .Values.crds.install }}\n"
        + body.rstrip("\n") + "\n{{- end }}\n"
    )


def outputs(crds_only: bool) -> dict:
    chart = ROOT / "charts" / "covenant" / "templates"
    want = {}
    if not crds_only:
        for name, header in FILES.items():
            want[chart / name] = render(name, header)
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        want[chart / "crds" / crd.name] = render_crd(crd)
    return want


def main() -> int:
    crds_only = "--check-crds" in sys.argv
    check = "--check" in sys.argv or crds_only
    stale = []
    want_all = outputs(crds_only)
    crd_dir = ROOT / "charts" / "covenant" / "templates" / "crds"
    extra = [p for p in crd_dir.glob("*.yaml") if p not in want_all]
    if extra:
        if check:
            stale += [str(p.relative_to(ROOT)) + " (no such CRD in crds/)" for p in extra]
        else:
            for p in extra:
                p.unlink()
    for out, want in want_all.items():
        if check:
            if not out.exists() or out.read_text() != want:
                stale.append(str(out.relative_to(ROOT)))
        else:
            out.parent.mkdir(exist_ok=True)
            out.write_text(want)
    if stale:
        print("out of sync with deploy/ or crds/: " + ", ".join(stale)
              + "; run  python3 charts/covenant/ci/sync-from-deploy.py", file=sys.stderr)
        return 1
    if check:
        print("the chart's CRDs are in sync with crds/" if crds_only else
              "the chart's policies, tenant roles and CRDs are in sync with deploy/ and crds/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
