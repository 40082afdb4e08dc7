#!/usr/bin/env bash
# deps.sh — install what `make test` needs and is missing: the Go modules,
# and, when running as root, Debian's postfix (postfix, postconf, postqueue,
# smtp-sink, smtp-source), swaks, dovecot (SASL), redis-server and
# redis-tools (shared relay limits; redis-cli creates the tests' Redis
# Cluster and asks their Sentinel), prometheus (for promtool, which checks
# contrib/prometheus/splitrelay.rules.yml) and OpenLDAP's slapd and
# ldap-utils (the directory sync). The end-to-end tests start private
# Postfix, Dovecot, Redis and slapd instances of their own; the machine's
# Postfix and slapd are never configured (debconf "No configuration",
# slapd/no_configuration) and may stay stopped, and the services of Redis,
# Prometheus and slapd are never started (policy-rc.d during the install).
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

go mod download
# The Sendmail suite's packages, downloaded next to Postfix, never installed.
contrib/scripts/deps-sendmail.sh

missing=()
for b in postfix postconf postqueue smtp-sink smtp-source swaks dovecot redis-server redis-cli promtool slapd ldapsearch; do
	command -v "$b" >/dev/null || missing+=("$b")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing ${missing[*]}; as root: apt-get install -y postfix swaks dovecot-core redis-server redis-tools prometheus slapd ldap-utils (or sudo make deps)" >&2
	exit 1
fi
command -v apt-get >/dev/null || { echo "deps.sh: missing ${missing[*]} and no apt-get: install postfix, swaks, dovecot-core, redis-server, redis-tools, prometheus (promtool), slapd and ldap-utils" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# Install Postfix without a configuration: no prompt, no system mail set-up.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# slapd without a database or a service configuration: no prompt; tests
# run their own slapd with -f CONFIG on a loopback port.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -q
# Never start the services these packages ship (Redis, Prometheus, slapd): the
# tests start private instances of their own. invoke-rc.d asks
# policy-rc.d; 101 = action forbidden.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
# redis-tools (redis-cli) comes with redis-server as a dependency;
# named so that a machine with only redis-server gets it too.
apt-get install -y -q postfix swaks dovecot-core redis-server redis-tools
# Only promtool is needed from prometheus: no recommends (node exporter).
command -v promtool >/dev/null || apt-get install -y -q --no-install-recommends prometheus
if ! command -v slapd >/dev/null || ! command -v ldapsearch >/dev/null; then
	apt-get install -y -q --no-install-recommends slapd ldap-utils
fi
