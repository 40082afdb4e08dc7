#!/usr/bin/env bash
# deps.sh — install what `make test` needs and is missing: the Go modules,
# and, when running as root, Debian's postfix (postfix, postconf, postqueue,
# smtp-sink, smtp-source) and swaks. The end-to-end tests start private
# Postfix instances of their own; the machine's Postfix service is never
# configured (debconf "No configuration") and may stay stopped.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

go mod download

missing=()
for b in postfix postconf postqueue smtp-sink smtp-source swaks dovecot; do
	command -v "$b" >/dev/null || missing+=("$b")
done
# Postfix's SMTP client authenticates through Cyrus SASL's PLAIN/LOGIN
# modules (the relay-client tests: a Postfix client with smtp_sasl_*).
compgen -G '/usr/lib/*/sasl2/libplain.so*' >/dev/null || missing+=(libsasl2-modules)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing ${missing[*]}; as root: apt-get install -y postfix swaks dovecot-core (or sudo make deps)" >&2
	exit 1
fi
command -v apt-get >/dev/null || { echo "deps.sh: missing ${missing[*]} and no apt-get: install postfix, swaks and dovecot-core" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
# Install Postfix without a configuration: no prompt, no system mail set-up.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q postfix swaks dovecot-core libsasl2-modules
