# splitrelay — see README.md. Targets:
#   make build   bin/splitrelay, version and commit from git
#   make deps    Go modules, and (as root) the Debian packages the tests run
#   make test    every test, including the end-to-end suite against a
#                private Postfix (SPLITRELAY_E2E=1: it may not skip), with
#                the machine's /etc/postfix and /etc/mail sealed off
#                (contrib/scripts/test.sh)
#   make check   go vet, gofmt, staticcheck (pinned in go.mod, run as go tool);
#                shellcheck when installed
#   make fuzz    every Fuzz target for FUZZTIME each
#   make bench   Postfix throughput without and with the milter
#   make soak    10,000 messages over 50 sessions through a private Postfix
#                with kill -9, reloads and a route down; prints a report and
#                fails unless nothing was lost, misrouted, duplicated or
#                relayed without authorization (not part of make test)
#   make bench-directory  directory scale: load time, heap and RSS across
#                reloads, decision latency for 10, 10k and 1M users, an
#                LDAP sync of 100k users (LDAP_BENCH_USERS=N for more)
#   make demo    a private Postfix, three sinks and sample mail, explained
#   make package dist/*.deb and dist/*.rpm (amd64, arm64) with nfpm (go tool)
#   make package-test  build, lintian, install, check and purge the .deb; inspect
#                the .rpm (as root on Debian; part of make test)
#   make systemd-test  the .deb under a real systemd in a systemd-nspawn container:
#                notify, STATUS=, reload refused, watchdog (as root; by hand, not in make test)

export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
FUZZTIME ?= 30s
# make test runs every Fuzz target too, briefly: the seeds and committed
# crashers always, and a few seconds of new inputs.
TESTFUZZTIME ?= 5s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build deps test check fuzz bench bench-directory soak demo package package-test systemd-test clean

all: check build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/splitrelay ./cmd/splitrelay

deps:
	contrib/scripts/deps.sh

test: deps
	contrib/scripts/test.sh
	FUZZTIME=$(TESTFUZZTIME) contrib/scripts/fuzz.sh
	contrib/scripts/package-test.sh

check:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) tool staticcheck ./...
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck -x contrib/scripts/*.sh .ci/run; \
	else echo "shellcheck not installed: skipped (apt-get install shellcheck)"; fi

fuzz:
	FUZZTIME=$(FUZZTIME) contrib/scripts/fuzz.sh

bench: deps
	contrib/scripts/bench.sh

soak: deps
	contrib/scripts/soak.sh

bench-directory:
	$(GO) test ./rules -run '^$$' -bench 'DirectoryLoad' -benchtime 3x
	$(GO) test ./rules -run '^$$' -bench 'DirectoryDecide|DirectoryResolve'
	$(GO) test ./cmd/splitrelay/e2e -run '^$$' -bench ReloadRSS -benchtime 1x
	$(GO) test ./milter/ldapsync -run '^$$' -bench Sync -benchtime 1x

demo: deps
	contrib/scripts/demo.sh

package:
	contrib/scripts/package.sh

package-test:
	contrib/scripts/package-test.sh

systemd-test:
	contrib/scripts/systemd-test.sh

clean:
	rm -rf bin dist
