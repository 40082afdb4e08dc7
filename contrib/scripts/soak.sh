#!/usr/bin/env bash
# make soak: the soak test (cmd/splitrelay/e2e/soak_test.go) through a private
# Postfix and the real daemon. SOAK_MESSAGES (default 10000), SOAK_SESSIONS
# (50), SOAK_TIMEOUT (15m, the client's retry budget) and SOAK_HOSTILE=1
# (every seventh message in a form Postfix canonicalises: issue 9) tune it;
# SOAK_REPORT=FILE also writes the report to FILE. The daemon's own log
# lines are left out of the output (SOAK_VERBOSE=1 keeps them). Exits
# non-zero unless nothing was lost, misrouted, duplicated or relayed
# without authorization.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
GO=${GO:-go}
# Like make test: a Postfix command run without the private instance's own
# configuration dies instead of reading the machine's.
T=$(mktemp -d /tmp/splitrelay-soak.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/noconf"
export MAIL_CONFIG="$T/noconf"
filter() {
	if [ "${SOAK_VERBOSE:-}" = 1 ]; then cat; else grep -v -e '^ *time=' -e 'splitrelay log:' || true; fi
}
SPLITRELAY_SOAK=1 SPLITRELAY_E2E=1 "$GO" test -count=1 -timeout 30m -run '^TestSoak$' -v ./cmd/splitrelay/e2e | filter
