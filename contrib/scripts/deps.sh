#!/usr/bin/env bash
# deps.sh — install what `make test` needs and is missing: the Go modules,
# and, when running as root, Debian's postfix (postfix, postconf, postqueue,
# smtp-sink, smtp-source), swaks and dovecot-core. The end-to-end tests start
# private Postfix instances of their own; the machine's Postfix service is
# never configured (debconf "No configuration") and may stay stopped.
#
# The Sendmail suite needs Sendmail 8.17 next to Postfix, which Debian does
# not allow to install: its packages are only downloaded (apt-get download)
# into a cache outside the source tree, $SPLITRELAY_SENDMAIL_CACHE or
# /var/cache/splitrelay-test/sendmail, and milter/sendmailtest unpacks them
# into a private root (dpkg -x). The libraries the sendmail binary links
# (and the SASL plugins) are installed; they configure nothing.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

go mod download

missing=()
for b in postfix postconf postqueue smtp-sink smtp-source swaks dovecot; do
	command -v "$b" >/dev/null || missing+=("$b")
done

sm_cache=${SPLITRELAY_SENDMAIL_CACHE:-/var/cache/splitrelay-test/sendmail}
sm_debs=()
for p in sendmail-bin sendmail-base sendmail-cf m4 libwrap0 sasl2-bin; do
	compgen -G "$sm_cache/${p}_*.deb" >/dev/null || sm_debs+=("$p")
done
sm_libs=()
for p in libdb5.3 libldap-2.5-0 libnsl2 libsasl2-2 libsasl2-modules libssl3; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || sm_libs+=("$p")
done

[ ${#missing[@]} -eq 0 ] && [ ${#sm_debs[@]} -eq 0 ] && [ ${#sm_libs[@]} -eq 0 ] && exit 0

want="${missing[*]} ${sm_debs[*]} ${sm_libs[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing $want; as root: make deps" >&2
	exit 1
fi
command -v apt-get >/dev/null || { echo "deps.sh: missing $want and no apt-get" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
	# Install Postfix without a configuration: no prompt, no system mail set-up.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get install -y -q postfix swaks dovecot-core
fi
if [ ${#sm_libs[@]} -gt 0 ]; then
	apt-get install -y -q "${sm_libs[@]}"
fi
if [ ${#sm_debs[@]} -gt 0 ]; then
	mkdir -p "$sm_cache"
	# apt-get download writes into the current directory; as root it warns
	# that the _apt sandbox user cannot write there, and downloads anyway.
	(
		cd "$sm_cache"
		apt-get download -q "${sm_debs[@]}" 2>&1 | { grep -v "^W: Download is performed unsandboxed" || true; }
	)
	for p in "${sm_debs[@]}"; do
		compgen -G "$sm_cache/${p}_*.deb" >/dev/null || { echo "deps.sh: apt-get download $p failed" >&2; exit 1; }
	done
fi
