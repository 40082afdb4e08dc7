#!/usr/bin/env bash
# deps-sendmail.sh — called by deps.sh: what the Sendmail suite
# (milter/sendmailtest) needs and is missing. Debian installs one MTA at a
# time, so Sendmail 8.17 is never installed next to the Postfix of the other
# suites: its packages are only downloaded (apt-get download) into a cache
# outside the source tree, $SPLITRELAY_SENDMAIL_CACHE or
# /var/cache/splitrelay-test/sendmail, and the harness unpacks them into a
# private root (dpkg -x). The libraries the sendmail binary links and the
# SASL plugins are installed: they configure nothing.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

sm_cache=${SPLITRELAY_SENDMAIL_CACHE:-/var/cache/splitrelay-test/sendmail}
debs=()
for p in sendmail-bin sendmail-base sendmail-cf m4 libwrap0 sasl2-bin; do
	compgen -G "$sm_cache/${p}_*.deb" >/dev/null || debs+=("$p")
done
libs=()
for p in libdb5.3 libldap-2.5-0 libnsl2 libsasl2-2 libsasl2-modules libssl3; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || libs+=("$p")
done
[ ${#debs[@]} -eq 0 ] && [ ${#libs[@]} -eq 0 ] && exit 0

want="${debs[*]} ${libs[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps-sendmail.sh: missing $want; as root: make deps" >&2
	exit 1
fi
command -v apt-get >/dev/null || { echo "deps-sendmail.sh: missing $want and no apt-get" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if [ ${#libs[@]} -gt 0 ]; then
	apt-get install -y -q "${libs[@]}"
fi
if [ ${#debs[@]} -gt 0 ]; then
	mkdir -p "$sm_cache"
	# apt-get download writes into the current directory; as root it warns
	# that the _apt sandbox user cannot write there, and downloads anyway.
	(
		cd "$sm_cache"
		apt-get download -q "${debs[@]}" 2>&1 | { grep -v "^W: Download is performed unsandboxed" || true; }
	)
	for p in "${debs[@]}"; do
		compgen -G "$sm_cache/${p}_*.deb" >/dev/null || { echo "deps-sendmail.sh: apt-get download $p failed" >&2; exit 1; }
	done
fi
