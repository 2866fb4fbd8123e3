#!/usr/bin/env python3
"""The chart's admission policies and tenant roles are deploy/'s, with the release's operator identity
and the chart's labels: this writes them (or, with --check, fails when they differ). One source:
edit deploy/, then run  python3 charts/covenant/ci/sync-from-deploy.py"""
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
    "tenant-roles.yaml": "The roles Covenant binds in tenant namespaces (deploy/tenant-roles.yaml, whose header\n"
    "documents them; the names are fixed because the operator binds them by name).",
}


def render(name: str, header: str) -> str:
    lines = (ROOT / "deploy" / name).read_text().split("\n")
    i = 0
    while i < len(lines) and (lines[i].startswith("#") or lines[i] == ""):
        i += 1
    body = "\n".join(lines[i:]).replace(OPERATOR, RELEASE_OPERATOR)
    body = body.replace(
        "  labels:\n    app.kubernetes.io/part-of: covenant\n",
        '  labels:\n    {{- include "covenant.labels" . | nindent 4 }}\n',
    )
    return "{{- /*\nGenerated from deploy/ by charts/covenant/ci/sync-from-deploy.py: edit deploy/.\n" + header + "\n*/ -}}\n" + body


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for name, header in FILES.items():
        out = ROOT / "charts" / "covenant" / "templates" / name
        want = render(name, header)
        if check:
            if not out.exists() or out.read_text() != want:
                stale.append(str(out.relative_to(ROOT)))
        else:
            out.write_text(want)
    if stale:
        print("out of sync with deploy/: " + ", ".join(stale)
              + "; run  python3 charts/covenant/ci/sync-from-deploy.py", file=sys.stderr)
        return 1
    if check:
        print("the chart's policies and tenant roles are in sync with deploy/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
