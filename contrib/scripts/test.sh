#!/usr/bin/env bash
# test.sh — the Go part of `make test`: every test, the end-to-end suites
# included (SPLITRELAY_E2E=1: a missing tool fails, it never skips), sealed
# from the machine's own MTA configuration so that a test that reads it
# fails on EVERY machine, not only on a fresh one:
#   - MAIL_CONFIG names an empty directory, so a Postfix command run
#     without its own -c/MAIL_CONFIG (postmap, postconf, sendmail…) dies
#     with "open …/main.cf: No such file or directory";
#   - as root (CI), the tests run in a private mount namespace where
#     /etc/postfix holds only the package's own files (no main.cf, no
#     master.cf, nothing the site added) and /etc/mail is empty, so reading
#     the site's files directly fails too. The machine itself is untouched.
# SPLITRELAY_SEALED tells postfixtest's guard test which of the two is on.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

T=$(mktemp -d /tmp/splitrelay-sealed.XXXXXX)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"
mkdir "$T/noconf" "$T/postfix" "$T/mail"
export MAIL_CONFIG="$T/noconf" SPLITRELAY_E2E=1
gotest=(go test -race -shuffle=on -count=1 "$@" ./...)

if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
	# The package's files under /etc/postfix (postfix-files, dynamicmaps.cf…,
	# which every postfix command reads from meta_directory), not the site's.
	if command -v dpkg >/dev/null && dpkg -s postfix >/dev/null 2>&1; then
		dpkg -L postfix | grep '^/etc/postfix/.' | while read -r f; do
			case "${f#/etc/postfix/}" in main.cf | master.cf) continue ;; esac
			if [ -d "$f" ]; then
				mkdir -p "$T/postfix/${f#/etc/postfix/}"
			elif [ -e "$f" ]; then
				cp -p "$f" "$T/postfix/${f#/etc/postfix/}"
			fi
		done
	fi
	# dynamicmaps.cf is written by the package's postinst from this copy.
	[ -r /usr/share/postfix/dynamicmaps.cf ] && cp /usr/share/postfix/dynamicmaps.cf "$T/postfix/"
	binds=""
	# The daemon's default state directory is the machine's; every test
	# must name its own. Seal it too, and fail below if a test wrote there.
	mkdir "$T/state"
	[ -d /var/lib/splitrelay ] && binds="mount --bind '$T/state' /var/lib/splitrelay;"
	[ -d /etc/postfix ] && binds="$binds mount --bind '$T/postfix' /etc/postfix;"
	[ -d /etc/mail ] && binds="$binds mount --bind '$T/mail' /etc/mail;"
	echo "test.sh: /etc/postfix (package files only) and /etc/mail (empty) sealed in a private mount namespace; MAIL_CONFIG=$T/noconf" >&2
	state_before=$([ -e /var/lib/splitrelay ] && echo yes || echo no)
	rc=0
	SPLITRELAY_SEALED=namespace unshare -m --propagation private bash -c "$binds exec \"\$@\"" sh "${gotest[@]}" || rc=$?
	if [ -n "$(ls -A "$T/state")" ] || { [ "$state_before" = no ] && [ -e /var/lib/splitrelay ]; }; then
		echo "test.sh: a test wrote to the machine's /var/lib/splitrelay: give it a [state] dir of its own" >&2
		[ "$state_before" = no ] && rm -rf /var/lib/splitrelay
		rc=1
	fi
	exit "$rc"
else
	echo "test.sh: not root or no mount namespace: only MAIL_CONFIG=$T/noconf guards the machine's Postfix configuration" >&2
	SPLITRELAY_SEALED=mail_config "${gotest[@]}"
fi
