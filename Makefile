# Build and ship macvlan-swarm as a Docker managed plugin (plugin v2).
#
# A managed plugin is a directory holding config.json and rootfs/. `make plugin`
# builds it under build/plugin without a Docker engine; the targets after it
# hand it to an engine (create, enable, install, push) or to a registry
# without any engine (push-registry).
#
#   make plugin                        build/plugin/{config.json,rootfs/}
#   make install                       (re)create and enable it on the local engine,
#                                      and install the host command in $(BINDIR)
#   make upgrade PUSH_REF=127.0.0.1:5000/macvlan-swarm:dev PUSH_FLAGS=-insecure
#                                      new build into the installed plugin, state kept
#   make push PLUGIN_NAME=reg:5000/macvlan-swarm PLUGIN_TAG=0.1.0
#   make push-registry PUSH_REF=127.0.0.1:5000/macvlan-swarm:0.1.0 PUSH_FLAGS=-insecure
#   make lint                          go vet and staticcheck, e2e packages included

GO      ?= go
COMMA   := ,
DOCKER  ?= docker
GOARCH  ?= $(shell $(GO) env GOARCH)

# Where `make install` puts the host command.
BINDIR ?= /usr/local/bin

PLUGIN_NAME ?= macvlan-swarm
PLUGIN_TAG  ?= latest
PLUGIN_REF  := $(PLUGIN_NAME):$(PLUGIN_TAG)

# Target and flags of the daemonless push (see cmd/macvlan-swarm-push -h).
# No default: a bare name would mean Docker Hub.
PUSH_REF   ?=
PUSH_FLAGS ?=

# `git describe` fails in a tree without commits or tags; fall back to "dev".
VERSION ?= $(or $(shell git describe --tags --always --dirty 2>/dev/null),dev)

MODULE      := github.com/macvlan-swarm/macvlan-swarm
LDFLAGS     := -s -w -X $(MODULE)/internal/version.Version=$(VERSION)
BUILD_DIR   := build
BIN         := $(BUILD_DIR)/macvlan-swarm
PUSH_BIN    := $(BUILD_DIR)/macvlan-swarm-push
PLUGIN_DIR  := $(BUILD_DIR)/plugin
ROOTFS      := $(PLUGIN_DIR)/rootfs

# The daemon runs alone in an otherwise empty rootfs: it must be static.
GOBUILD := CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)'

# staticcheck 2026.2.2; it needs Go 1.26 or newer (its go.mod says 1.26.0).
# `make lint` installs it from the Go module proxy, once, into a folder named
# after the version: changing the pin installs the new one, nothing else does.
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := $(BUILD_DIR)/tools/staticcheck-$(STATICCHECK_VERSION)/staticcheck

.PHONY: all compile rootfs plugin create enable install install-cmd upgrade push push-registry \
	need-push-ref push-tool demo lint test test-e2e test-unit test-e2e-push bench bench-smoke bench-parallel soak leader clean

all: plugin

# go build has its own cache: always ask it, it rebuilds only what changed.
compile:
	@mkdir -p $(BUILD_DIR)
	$(GOBUILD) -o $(BIN) ./cmd/macvlan-swarm

# The rootfs is rebuilt from scratch so nothing stale survives in it, and
# every build gets fresh timestamps (see scripts/plugin-create.sh).
# /run/docker/plugins (where the engine mounts the socket directory) and
# /state (config.json's propagatedMount) are not required: the engine creates
# missing mount points. They are there so the rootfs shows what it is for.
# /tmp is scratch space, world-writable and sticky.
rootfs: compile
	rm -rf $(ROOTFS)
	mkdir -p $(ROOTFS)/run/docker/plugins $(ROOTFS)/state $(ROOTFS)/tmp
	chmod 1777 $(ROOTFS)/tmp
	cp $(BIN) $(ROOTFS)/macvlan-swarm
	@du -sh $(ROOTFS) | awk '{print "rootfs size: " $$1}'

plugin: rootfs
	sed 's|@VERSION@|$(VERSION)|' plugin/config.json > $(PLUGIN_DIR)/config.json
	@echo "plugin $(VERSION) ready in $(PLUGIN_DIR)"

# The plugin is created disabled. scripts/plugin-create.sh gets past the
# engine's refusal of a rootfs layer that another installed plugin already
# holds (the same build created under a second name).
create: plugin
	scripts/plugin-create.sh '$(DOCKER)' $(PLUGIN_REF) $(PLUGIN_DIR)

enable:
	$(DOCKER) plugin enable $(PLUGIN_REF)

# Replace any plugin of the same name: networks using it keep referring to it
# by name and reach the new one once it is enabled. The old copy's saved
# networks and endpoints are carried over (see scripts/install.sh). The same
# binary goes to $(BINDIR) as the operator's host command (`macvlan-swarm
# status`, `macvlan-swarm doctor`); `make install-cmd` installs only that.
install: plugin install-cmd
	scripts/install.sh '$(DOCKER)' $(PLUGIN_REF) $(PLUGIN_DIR)

install-cmd: compile
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/macvlan-swarm
	@echo "host command installed: $(DESTDIR)$(BINDIR)/macvlan-swarm (status, doctor)"

# Swap the rootfs of the installed $(PLUGIN_REF) for this build and keep its
# state (the propagated mount survives `docker plugin upgrade`). The engine
# pulls the build from PUSH_REF, so the registry must be one it can reach;
# the plugin keeps its name, PLUGIN_REF, whatever PUSH_REF is.
upgrade: need-push-ref push-registry
	@if [ "$$($(DOCKER) plugin inspect -f '{{.Enabled}}' $(PLUGIN_REF))" = true ]; then \
		echo "upgrade: disabling $(PLUGIN_REF) (forced: networks may use it)"; \
		$(DOCKER) plugin disable -f $(PLUGIN_REF) || exit 1; \
	fi
	@echo "upgrade: $(PLUGIN_REF) from $(PUSH_REF)"
	echo y | $(DOCKER) plugin upgrade --grant-all-permissions $(PLUGIN_REF) $(PUSH_REF)
	@echo "upgrade: enabling $(PLUGIN_REF)"
	$(DOCKER) plugin enable $(PLUGIN_REF)

# Push through the engine: PLUGIN_NAME must name the registry repository and
# the plugin must have been created under that name.
push:
	$(DOCKER) plugin push $(PLUGIN_REF)

need-push-ref:
	@test -n "$(PUSH_REF)" || { echo "set PUSH_REF=REGISTRY/REPOSITORY:TAG, e.g. PUSH_REF=127.0.0.1:5000/macvlan-swarm:dev (add PUSH_FLAGS=-insecure for plain HTTP)" >&2; exit 2; }

push-tool:
	@mkdir -p $(BUILD_DIR)
	$(GO) build -trimpath -ldflags '-X $(MODULE)/internal/version.Version=$(VERSION)' -o $(PUSH_BIN) ./cmd/macvlan-swarm-push

# Push build/plugin to a registry without any engine.
push-registry: need-push-ref plugin push-tool
	$(PUSH_BIN) -dir $(PLUGIN_DIR) $(PUSH_FLAGS) $(PUSH_REF)

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(@D) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# go vet and staticcheck over every package, then again with the e2e build
# tag, which the end-to-end packages and their lab need to be compiled at all.
lint: $(STATICCHECK)
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags e2e ./...

# The engines of the end-to-end matrix (docs/engines.md), how many run at
# once, and extra `go test` flags for every engine's run (e.g. E2E_FLAGS=-v
# or E2E_FLAGS='-run TestDemo').
E2E_ENGINES ?= 20.10,26.1,28.5
E2E_JOBS    ?= 2
E2E_FLAGS   ?=

# The whole suite, as root: the lint first, then unit, netlink and protocol
# tests under the race detector, then the end-to-end benches against real
# engines (build tag e2e: dockerd, a registry and multi-node swarms, each in
# its own namespaces) once per engine of the matrix, ending with a table of
# suite × engine, then a smoke run of the benchmarks (one round of each part,
# checking only that every figure is produced). Without root the e2e tests
# and the netlink tests skip, saying why.
test: lint plugin
	@scripts/ensure-packages.sh
	$(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory test-e2e
	@$(MAKE) --no-print-directory bench-smoke

# Only the end-to-end matrix: engines 26.1 and 28.5 are fetched into
# /var/cache/mvs-engines first when missing (scripts/ensure-engines.sh);
# each engine's log goes to build/e2e/<engine>.log.
test-e2e: plugin
	@scripts/ensure-packages.sh
	@scripts/ensure-engines.sh $(subst $(COMMA), ,$(E2E_ENGINES))
	MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(GO) run ./test/lab/matrix -engines $(E2E_ENGINES) -jobs $(E2E_JOBS) -logs $(CURDIR)/$(BUILD_DIR)/e2e -- $(E2E_FLAGS)

# A private engine in a network namespace of its own (the e2e lab), the
# plugin installed in it, a network, two containers that reach each other;
# prints what happened and removes everything. Needs root; installs the
# Debian packages it needs when missing.
demo: plugin
	@scripts/ensure-packages.sh
	MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(GO) test -tags e2e -count=1 -v -run '^TestDemo$$' ./test/e2e/

# The full churn soak (docs/reliability.md): 300 container life cycles, 10
# at a time, 16 SIGKILLs of the plugin's daemon, disable/enable and a dockerd
# restart, on a local network and on an attachable swarm network; then
# nothing of a dead container may be left. `make test` runs a short one.
# Leader changes under load in a three-manager swarm, checking every second
# that no two tasks share an address (test/e2e/leader_test.go), on a network
# with the plugin's address manager. About 5 minutes, so not part of make
# test, which runs the step-by-step TestLeaderChangeFreesAddressesOfCutTasks.
# MVS_LEADER_IPAM=default runs it against the engine's built-in one.
leader: plugin
	MVS_LEADER=1 MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(GO) test -tags e2e -count=1 -v -timeout 60m -run '^TestLeaderChangesUnderLoad$$' ./test/e2e/

soak: plugin
	@scripts/ensure-packages.sh
	MVS_SOAK_CYCLES=300 MVS_SOAK_PARALLEL=10 MVS_SOAK_KILLS=16 MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) \
		$(GO) test -tags e2e -count=1 -timeout 60m -run '^TestChurnSoak$$' -v ./test/e2e/

# Only the fast tests (no engines).
test-unit:
	$(GO) test -race -count=1 ./...

# Daemonless push installed by a real dockerd in the e2e lab (root, docker.io
# 20.10, docker-registry), plugin create and rm; see test/e2e/packaging_test.go.
test-e2e-push: plugin
	MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(GO) test -tags e2e -count=1 -v -run '^TestPackaging$$' ./test/e2e/

# The benchmarks of docs/benchmarks.md, eight parts, each figure a median of
# interleaved runs next to its peer from the same run (issue 11): in-process
# parts (5 protocol cost, 6 growth, 7 teardown), the footprint (8), then the
# engine-level parts in the e2e lab (1 container start, 2 parallel starts,
# 3 swarm, 4 data path). `make bench` (root, ~15 min) writes the table into
# docs/benchmarks.md and the charts into docs/bench/; every go test's output
# is kept in $(BENCH_OUT)/*.log. `make bench-smoke` (part of `make test`)
# runs one round of each into build/bench-smoke and fails only when a figure
# was not produced; it never judges a time.
BENCH_OUT       ?= $(BUILD_DIR)/bench
BENCH_SMOKE_OUT ?= $(BUILD_DIR)/bench-smoke
BENCH_ENV        = MVS_BENCH_OUT=$(CURDIR)/$(1) MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR)
define bench-run
	@rm -rf $(2) && mkdir -p $(2)
	@echo "bench ($(1)): in-process parts 5-7, footprint 8"
	MVS_BENCH=$(1) $(call BENCH_ENV,$(2)) $(GO) test -count=1 -p 1 -v -timeout 30m -run '^TestBench' ./internal/driver/ ./cmd/macvlan-swarm/ > $(2)/inprocess.log 2>&1 || { tail -50 $(2)/inprocess.log; exit 1; }
	@echo "bench ($(1)): engine parts 1-4 in the e2e lab"
	MVS_BENCH=$(1) $(call BENCH_ENV,$(2)) $(GO) test -tags e2e -count=1 -v -timeout 60m -run '^TestBench(Starts|ParallelStarts|Swarm|DataPath)$$' ./test/e2e/ > $(2)/engine.log 2>&1 || { tail -80 $(2)/engine.log; exit 1; }
endef

bench: plugin
	@scripts/ensure-packages.sh
	$(call bench-run,full,$(BENCH_OUT))
	$(GO) run ./test/bench/report -in $(BENCH_OUT) -docs docs/benchmarks.md -charts docs/bench -want 1-8

bench-smoke: plugin
	@scripts/ensure-packages.sh
	$(call bench-run,smoke,$(BENCH_SMOKE_OUT))
	$(GO) run ./test/bench/report -in $(BENCH_SMOKE_OUT) -charts $(BENCH_SMOKE_OUT)/charts -want 1-8 -check > $(BENCH_SMOKE_OUT)/table.md
	@cat $(BENCH_SMOKE_OUT)/table.md

# 50 containers started at once through the plugin (state file on the
# disk under /tmp) against the built-in macvlan on the same parent, in the
# e2e lab; prints a table (see docs/benchmarks.md). Root; several minutes.
# MVS_BENCH_ROUNDS (default 5), MVS_BENCH_PARALLEL (50), MVS_BENCH_SERIAL (10).
bench-parallel: plugin
	@scripts/ensure-packages.sh
	MVS_BENCH=1 MVS_PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(GO) test -tags e2e -count=1 -v -timeout 60m -run '^TestBenchParallelStarts$$' ./test/e2e/

clean:
	rm -rf $(BUILD_DIR)
