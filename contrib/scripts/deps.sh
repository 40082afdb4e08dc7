#!/usr/bin/env bash
# deps.sh — install what `make test` needs and is missing: the Go modules,
# and, when running as root, Debian's postfix (postfix, postconf, postqueue,
# smtp-sink, smtp-source), swaks, dovecot (SASL), redis-server (shared
# relay limits) and prometheus (for promtool, which checks
# contrib/prometheus/splitrelay.rules.yml). The end-to-end tests start
# private Postfix, Dovecot and Redis instances of their own; the machine's
# Postfix service is never configured (debconf "No configuration") and may
# stay stopped, and Prometheus's own service is never started (policy-rc.d
# during the install).
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

go mod download
# The Sendmail suite's packages, downloaded next to Postfix, never installed.
contrib/scripts/deps-sendmail.sh

missing=()
for b in postfix postconf postqueue smtp-sink smtp-source swaks dovecot redis-server promtool; do
	command -v "$b" >/dev/null || missing+=("$b")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing ${missing[*]}; as root: apt-get install -y postfix swaks dovecot-core redis-server prometheus (or sudo make deps)" >&2
	exit 1
fi
command -v apt-get >/dev/null || { echo "deps.sh: missing ${missing[*]} and no apt-get: install postfix, swaks, dovecot-core, redis-server and prometheus (promtool)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# Install Postfix without a configuration: no prompt, no system mail set-up.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
# Never start the services these packages ship (Redis, Prometheus): the
# tests start private instances of their own. invoke-rc.d asks
# policy-rc.d; 101 = action forbidden.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -q postfix swaks dovecot-core redis-server
# Only promtool is needed from prometheus: no recommends (node exporter).
command -v promtool >/dev/null || apt-get install -y -q --no-install-recommends prometheus
