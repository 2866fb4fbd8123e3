#!/usr/bin/env bash
# Runs the Argo CD health checks of argocd-cm-health.yaml against sample objects and checks the status
# (and, where it matters, the message) each returns. The samples are Lua tables shaped like the JSON
# Argo CD decodes (the objects as the API server returns them).
#
#   examples/gitops/test-health.sh [LUA...]     default: every one of lua5.1 lua5.4 that is installed
#
# Argo CD runs the scripts with gopher-lua (Lua 5.1 semantics), hence lua5.1 (Debian: apt-get install
# lua5.1 lua5.4). Exits non-zero on any mismatch, or when no Lua interpreter is found; the last line
# is "N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cm=$here/argocd-cm-health.yaml

if [ $# -gt 0 ]; then
  luas=("$@")
else
  luas=()
  for l in lua5.1 lua5.4; do command -v "$l" >/dev/null && luas+=("$l"); done
fi
if [ ${#luas[@]} -eq 0 ]; then
  echo "no Lua interpreter: apt-get install lua5.1 lua5.4 (or pass one)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Extracts the block scalar of data key $1 (indented four spaces under `  key: |`) into $2.
extract() {
  awk -v key="  resource.customizations.health.covenant.dev_$1: |" '
    $0 == key { on = 1; next }
    on && /^    / { print substr($0, 5); next }
    on && /^[[:space:]]*$/ { print ""; next }
    on { exit }
  ' "$cm" >"$2"
  [ -s "$2" ] || {
    echo "no health check for $1 in $cm" >&2
    exit 1
  }
}
for kind in Account SupportPackage Suspension DeprecationNotice; do
  extract "$kind" "$work/$kind.lua"
done

cat >"$work/test.lua" <<'EOF'
local dir = arg[1]
local passed, failed = 0, 0

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Runs a health script with `obj` bound, as Argo CD does (each script sees only `obj` and the
-- standard library).
local function health(kind, obj)
  local text = read(dir .. "/" .. kind .. ".lua")
  local env = setmetatable({ obj = obj }, { __index = _G })
  local chunk
  if setfenv then -- Lua 5.1
    chunk = assert(loadstring(text, kind))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, kind, "t", env))
  end
  return chunk()
end

local function check(name, kind, obj, want, message)
  local ok, hs = pcall(health, kind, obj)
  local good = ok and type(hs) == "table" and hs.status == want
    and (message == nil or (type(hs.message) == "string" and string.find(hs.message, message, 1, true) ~= nil))
  if good then
    passed = passed + 1
    print(string.format("PASS  %-17s %-62s %s: %s", kind, name, hs.status, tostring(hs.message)))
  else
    failed = failed + 1
    local got = ok and (type(hs) == "table" and (tostring(hs.status) .. ": " .. tostring(hs.message)) or tostring(hs))
      or ("error: " .. tostring(hs))
    print(string.format("FAIL  %-17s %-62s want %s%s, got %s", kind, name, want,
      message and (" (\"" .. message .. "\")") or "", got))
  end
end

local function cond(type_, status, reason, message)
  return { type = type_, status = status, reason = reason, message = message,
           lastTransitionTime = "2026-11-28T10:00:00Z" }
end

-- Account -------------------------------------------------------------------------------------------
local function account(generation, status)
  return {
    apiVersion = "covenant.dev/v1alpha1", kind = "Account",
    metadata = { name = "acme", generation = generation, labels = { region = "eu" } },
    spec = { displayName = "Acme", administrators = { { kind = "User", name = "alice@acme.example" } } },
    status = status,
  }
end
local readyConds = {
  cond("Ready", "True", "Ready", "every managed object is in place"),
  cond("NamespacesReady", "True", "Ready", "1 namespace"),
  cond("Suspended", "False", "NotSuspended", "no suspension is in force"),
}
check("no status yet", "Account", account(1, nil), "Progressing", "Waiting for Covenant")
check("Ready=True, observedGeneration == generation", "Account",
  account(3, { phase = "Active", observedGeneration = 3, supportPackage = "standard", conditions = readyConds }),
  "Healthy", "every managed object is in place")
check("Ready=True but an older generation observed", "Account",
  account(4, { phase = "Active", observedGeneration = 3, conditions = readyConds }),
  "Progressing", "observe generation 4")
check("Ready=True without observedGeneration", "Account",
  account(1, { phase = "Active", conditions = readyConds }), "Progressing")
check("phase Provisioning, Ready=False", "Account",
  account(1, { phase = "Provisioning", observedGeneration = 1,
               conditions = { cond("Ready", "False", "Provisioning", "creating namespace acme") } }),
  "Progressing", "creating namespace acme")
check("phase Suspended (shows the cause)", "Account",
  account(2, { phase = "Suspended", observedGeneration = 2, conditions = {
    cond("Ready", "False", "Suspended", "suspended"),
    cond("Suspended", "True", "AcceptableUsePolicy", "AcceptableUsePolicy: bulk messaging (AUP-4711)"),
  } }), "Suspended", "bulk messaging (AUP-4711)")
check("phase Suspended, even with Ready=True", "Account",
  account(2, { phase = "Suspended", observedGeneration = 2, conditions = readyConds }), "Suspended",
  "The Account is suspended")
check("phase Degraded (shows Ready's message)", "Account",
  account(2, { phase = "Degraded", observedGeneration = 2, conditions = {
    cond("Ready", "False", "NamespaceConflict", "namespace acme belongs to Account other"),
  } }), "Degraded", "namespace acme belongs to Account other")
check("phase Degraded without conditions", "Account",
  account(2, { phase = "Degraded", observedGeneration = 2 }), "Degraded")
check("phase Terminating", "Account",
  account(2, { phase = "Terminating", observedGeneration = 2,
               conditions = { cond("Ready", "False", "Terminating", "releasing namespaces") } }),
  "Progressing", "releasing namespaces")
check("status without conditions", "Account",
  account(1, { phase = "Active", observedGeneration = 1 }), "Progressing", "Phase Active")

-- SupportPackage ------------------------------------------------------------------------------------
local function package(status)
  return { apiVersion = "covenant.dev/v1alpha1", kind = "SupportPackage",
           metadata = { name = "business", generation = 1 }, spec = { displayName = "Business" },
           status = status }
end
check("Ready=True", "SupportPackage",
  package({ accounts = 2, observedGeneration = 1, conditions = { cond("Ready", "True", "Ready", "the package is usable") } }),
  "Healthy", "the package is usable")
check("Ready=False (two defaults)", "SupportPackage",
  package({ accounts = 0, observedGeneration = 1, conditions = {
    cond("Ready", "False", "MultipleDefaults", "packages standard and business are both default: true") } }),
  "Degraded", "both default")
check("no status yet", "SupportPackage", package(nil), "Progressing")
check("status without conditions", "SupportPackage", package({ accounts = 0 }), "Progressing")

-- Suspension ----------------------------------------------------------------------------------------
local function suspension(status)
  return { apiVersion = "covenant.dev/v1alpha1", kind = "Suspension",
           metadata = { name = "acme-aup", generation = 1 },
           spec = { account = "acme", reason = "AcceptableUsePolicy", cause = "bulk messaging" },
           status = status }
end
for _, phase in ipairs({ "Active", "Pending", "Lifted" }) do
  check("phase " .. phase, "Suspension",
    suspension({ phase = phase, observedGeneration = 1, conditions = { cond("Ready", "True", phase, "the suspension is " .. phase) } }),
    "Healthy", phase)
end
check("phase Active without conditions", "Suspension", suspension({ phase = "Active" }), "Healthy", "Active")
check("phase Invalid (shows why)", "Suspension",
  suspension({ phase = "Invalid", observedGeneration = 1, conditions = {
    cond("Ready", "False", "AccountNotFound", "Account acme does not exist: create it or fix spec.account") } }),
  "Degraded", "Account acme does not exist")
check("no status yet", "Suspension", suspension(nil), "Progressing")
check("status without a phase", "Suspension", suspension({ observedGeneration = 1 }), "Progressing")

-- DeprecationNotice ---------------------------------------------------------------------------------
local function notice(conditions)
  local status = nil
  if conditions ~= nil then
    status = { servedAt = "2026-11-01T00:00:00Z", enforcedEffectiveAt = "2026-12-25T00:00:00Z",
               observedGeneration = 1, conditions = conditions }
  end
  return { apiVersion = "covenant.dev/v1alpha1", kind = "DeprecationNotice",
           metadata = { name = "dpa-2027", generation = 1 },
           spec = { type = "Amendment", summary = "DPA", effectiveAt = "2026-12-25T00:00:00Z" },
           status = status }
end
check("NoticeWindowSatisfied=True", "DeprecationNotice",
  notice({ cond("NoticeWindowSatisfied", "True", "Satisfied", "effective 54 days after notice (30 required)"),
           cond("Effective", "False", "NotYet", "effective at 2026-12-25T00:00:00Z") }),
  "Healthy", "54 days")
check("NoticeWindowSatisfied=True, reason Exempt", "DeprecationNotice",
  notice({ cond("NoticeWindowSatisfied", "True", "Exempt", "exempt: SecurityRisk (§2.3)") }), "Healthy", "exempt")
check("NoticeWindowSatisfied=False (names the lawful instant)", "DeprecationNotice",
  notice({ cond("NoticeWindowSatisfied", "False", "WindowTooShort",
                "an Amendment takes effect no less than 30 days after notice: enforced from 2026-12-31T00:00:00Z") }),
  "Degraded", "enforced from 2026-12-31T00:00:00Z")
check("no status yet", "DeprecationNotice", notice(nil), "Progressing")
check("status without the condition", "DeprecationNotice",
  notice({ cond("Effective", "False", "NotYet", "not yet") }), "Progressing")

print(string.format("%s: %d passed, %d failed", _VERSION, passed, failed))
os.exit(failed == 0 and 0 or 1)
EOF

total_failed=0
for lua in "${luas[@]}"; do
  echo "== $lua ($("$lua" -v 2>&1 | head -n 1))"
  "$lua" "$work/test.lua" "$work" || total_failed=$((total_failed + 1))
done
[ "$total_failed" -eq 0 ]
