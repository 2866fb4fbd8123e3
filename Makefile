# Covenant — the two commands are `make run` and `make test`; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
STATE := $(CURDIR)/.covenant
CLUSTER := e2e/cluster/cluster.sh
BIN = $(shell bash e2e/cluster/build.sh)
export KUBECONFIG_ADMIN := $(STATE)/kubeconfig
# The revision `covenant --version` prints (read by the build; hack/revision.sh says where it comes from).
export COVENANT_REVISION := $(shell bash hack/revision.sh)

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the covenant binary (debug).
	$(CARGO) build -p covenant

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types.
	$(CARGO) run -q -p covenant -- crd --dir crds

.PHONY: fmt
fmt: ## Format the code.
	$(CARGO) fmt --all

.PHONY: lint
lint: ## rustfmt check and clippy with warnings denied.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: checks
checks: ## Generated copies in sync (chart CRDs and policies, GitOps copy), helm lint --strict, kube-score, promtool on the alerts and dashboard, dist/ from the chart, actionlint on .github/workflows/.
	bash charts/covenant/ci/check-crds-in-sync.sh
	python3 charts/covenant/ci/sync-from-deploy.py --check
	bash examples/gitops/sync.sh --check
	for values in charts/covenant/ci/values/*.yaml; do \
	  "$$(bash e2e/cluster/build.sh)/helm" lint --strict charts/covenant -f "$$values" || exit 1; done
	bash charts/covenant/ci/kube-score.sh
	bash charts/covenant/ci/check-subchart.sh
	bash charts/covenant/ci/check-monitoring.sh
	bash hack/dist.sh --check
	"$$(bash e2e/tools/build.sh)/actionlint" -no-color .github/workflows/*.yml

.PHONY: dist
dist: ## Release artifacts in dist/: covenant.yaml (kubectl apply), default-package.yaml, crds.yaml, the packaged chart.
	bash hack/dist.sh

.PHONY: unit
unit: ## Unit and integration tests that need no cluster.
	$(CARGO) test --workspace --exclude covenant-e2e --exclude covenant-bench

.PHONY: prereqs
prereqs: ## Install what the image stage needs if missing (buildah, musl-tools, the Rust musl target); says what it installs.
	bash hack/ci-prereqs.sh

.PHONY: e2e
e2e: prereqs build ## End-to-end tests on one local control plane (e2e/run.sh starts it, runs every test binary, stops it).
	bash e2e/run.sh

.PHONY: test
# On a fresh machine the Go builds (the control plane with helm, and the judges beside it: about 15
# minutes cold) run beside fmt, clippy and the unit tests, as `make run` overlaps its builds: the
# downloads, serial crates and links of one leave a core idle that another uses (BENCHMARKS.md). With
# the Go binaries cached, they take 0.1 s.
test: prereqs ## Everything CI runs: prerequisites, fmt, clippy, unit tests (beside the Go builds), chart checks, e2e (image included), benchmark smoke.
	@log=$$(mktemp); setsid bash -c 'bash e2e/cluster/build.sh & cp=$$!; bash e2e/tools/build.sh; judges=$$?; \
	  wait $$cp && exit $$judges' >"$$log" 2>&1 & go=$$!; \
	  $(MAKE) --no-print-directory lint unit || { kill -- -$$go 2>/dev/null; exit 1; }; \
	  if ! wait $$go; then cat "$$log"; echo "building the control plane or the judges failed (output above)"; exit 1; fi; \
	  cat "$$log"; rm -f "$$log"
	$(MAKE) --no-print-directory checks e2e bench-smoke

.PHONY: cluster-up
cluster-up: ## Start the local control plane in the background (.covenant/kubeconfig).
	bash $(CLUSTER) up $(STATE)

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its state.
	bash $(CLUSTER) down $(STATE)

.PHONY: run
# The control plane's Go build (first run only) overlaps the Rust build: the downloads, serial crates
# and links of one leave a core idle that the other uses (measured in BENCHMARKS.md).
run: ## The quick start: cluster, CRDs, examples, operator in the foreground.
	@bash e2e/cluster/build.sh etcd kube-apiserver kube-controller-manager kubectl >/dev/null & go=$$!; \
	  $(CARGO) build -p covenant || { kill $$go 2>/dev/null; exit 1; }; \
	  wait $$go || { echo "building the control plane failed (output above)"; exit 1; }
	bash $(CLUSTER) up $(STATE)
	bash e2e/run-demo.sh $(STATE)

.PHONY: bench
bench: ## Benchmarks on real control planes, N=100 and 1000 (figures go to BENCHMARKS.md).
	bash e2e/bench.sh

.PHONY: bench-smoke
bench-smoke: ## Benchmarks at N=20 (20 s at rest), then the account-quota scenario at N=6: the same table in a few minutes.
	bash e2e/bench.sh --smoke

.PHONY: chaos
chaos: build ## The long chaos run: 200 accounts, the operator SIGKILLed every 0.2-2 s (own cluster).
	env -u COVENANT_E2E_KUBECONFIG CHAOS_ACCOUNTS=$${CHAOS_ACCOUNTS:-200} $(CARGO) test -p covenant-e2e --test chaos -- --nocapture

.PHONY: clean
clean: cluster-down ## Stop the cluster and remove build output.
	$(CARGO) clean
