# tox-like entry points. `make test` is what CI runs (after .ci/deps.sh).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
PY      := /usr/bin/python3
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/ironic-dpu/ironic-dpu-agent/internal/version.Version=$(VERSION)
SAMPLE  := etc/ironic-dpu-agent/ironic-dpu-agent.conf.sample
# A count, not a duration: a duration-based -fuzztime can fail with a bare
# "context deadline exceeded" and no crasher on a loaded machine (a race in
# Go 1.26's fuzz coordinator, go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 200000x

.PHONY: help deps build unit functional fuzz python-unit e2e e2e-openstack lint genconfig \
        check-generated test bench demo clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install Debian packages and Go modules (idempotent)
	bash .ci/deps.sh

build: ## build the agent and the SPDK emulator into bin/
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ironic-dpu-agent ./cmd/ironic-dpu-agent
	$(GO) build -trimpath -o $(BIN)/spdk-emulator ./cmd/spdk-emulator

unit: ## unit tests: nothing external started
	$(GO) test -race -count=1 ./...

functional: build ## functional tests against real RabbitMQ, oslo.messaging, OVS/OVN and the SPDK emulator
	$(GO) test -tags functional -count=1 -p 1 -timeout 20m ./tests/functional/...

fuzz: ## bounded fuzzing of the oslo envelope decoder
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./rpcapi

python-unit: ## unit tests of the ironic_dpu driver and the Nova driver (nova/virt/ironic_dpu) with Debian's python3, and pip install . into a fresh virtualenv
	$(PY) -m unittest discover -s ironic_dpu/tests -t .
	$(PY) -m unittest discover -s tests/nova_driver -t tests/nova_driver

e2e: build ## Ironic end to end: real ironic-api/conductor, RabbitMQ, OVS/OVN, agent
	IRONIC_DPU_AGENT_BIN=$(BIN)/ironic-dpu-agent SPDK_EMULATOR_BIN=$(BIN)/spdk-emulator bash tests/ironic/e2e.sh

e2e-openstack: build ## whole OpenStack Zed (Nova, Neutron ML2/OVN, Cinder, Glance, Placement, Ironic) with the dpu driver and the agent
	IRONIC_DPU_AGENT_BIN=$(BIN)/ironic-dpu-agent bash tests/openstack/e2e.sh

UNIT    := etc/ironic-dpu-agent/ironic-dpu-agent.service

lint: ## gofmt, go vet, staticcheck, shellcheck, python byte-compile, systemd-analyze verify of the unit
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags functional ./...
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags functional ./...
	bash -n devstack/plugin.sh
	shellcheck -x devstack/plugin.sh devstack/settings .ci/run .ci/deps.sh $$(git ls-files 'tests/*.sh' 'scripts/*.sh')
	$(PY) -m compileall -q ironic_dpu nova tests/python tests/nova_driver
	@# The unit's binary is not installed here: verify a copy running /bin/true.
	@# verify exits 0 on unknown keys and bad values, so any line about the
	@# unit fails; lines about the machine's other units (loaded through
	@# multi-user.target) are not ours to judge.
	@if command -v systemd-analyze >/dev/null; then tmp=$$(mktemp -d); u=$$(basename $(UNIT)); \
	  sed 's|^ExecStart=/usr/bin/ironic-dpu-agent |ExecStart=/bin/true |' $(UNIT) > $$tmp/$$u; \
	  all=$$(systemd-analyze verify --man=no --recursive-errors=no $$tmp/$$u 2>&1); rc=$$?; rm -rf $$tmp; \
	  out=$$(grep -F "$$u" <<<"$$all"); \
	  if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "systemd-analyze verify $(UNIT):"; echo "$$out"; exit 1; fi; \
	  else echo "systemd-analyze not installed: $(UNIT) not verified"; fi

genconfig: ## regenerate the sample config in etc/
	$(GO) run ./cmd/ironic-dpu-agent genconfig -o $(SAMPLE)

check-generated: ## fail if the sample config or the OVSDB models drifted
	@tmp=$$(mktemp); $(GO) run ./cmd/ironic-dpu-agent genconfig -o $$tmp; \
	  if ! diff -u $(SAMPLE) $$tmp; then echo "$(SAMPLE) is stale: run make genconfig"; rm -f $$tmp; exit 1; fi; rm -f $$tmp
	@tmp=$$(mktemp -d); $(GO) tool modelgen -p vswitchd -o $$tmp network/ovs/vswitchd/vswitch.ovsschema; \
	  for f in $$tmp/*.go; do if ! diff -q $$f network/ovs/vswitchd/$$(basename $$f) >/dev/null; then \
	    echo "network/ovs/vswitchd/$$(basename $$f) is stale: run go generate ./network/ovs/vswitchd"; rm -rf $$tmp; exit 1; fi; done; rm -rf $$tmp

test: lint check-generated unit python-unit functional fuzz e2e e2e-openstack ## everything CI runs

bench: build ## benchmarks: ratios against a baseline measured in the same run
	$(GO) run ./tests/bench/rpc
	$(GO) run ./tests/bench/network
	$(GO) run ./tests/bench/storage
	bash tests/bench/ironic/run.sh
	FLEET_N=$${FLEET_N:-100} IRONIC_DPU_AGENT_BIN=$(BIN)/ironic-dpu-agent SPDK_EMULATOR_BIN=$(BIN)/spdk-emulator \
	  bash tests/bench/fleet/run.sh
	bash tests/bench/openstack/bench.sh

demo: deps build ## bring up a local stack and run the agent's job end to end
	IRONIC_DPU_AGENT_BIN=$(BIN)/ironic-dpu-agent SPDK_EMULATOR_BIN=$(BIN)/spdk-emulator bash tests/demo/demo.sh

clean:
	rm -rf $(BIN)
