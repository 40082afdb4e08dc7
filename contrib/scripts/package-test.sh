#!/usr/bin/env bash
# package-test.sh — build the .deb and .rpm for this machine's architecture
# and check them as an administrator would meet them (run by `make test`,
# so CI covers it; as root on Debian, else it says why and skips):
#   lintian on the .deb: no errors (warnings are printed);
#   dpkg -i (apt-get install -f for dependencies); the installed
#   /usr/sbin/splitrelay check on the installed default config; the socket
#   directory's owner and mode; splitrelay reload against the daemon run
#   as the unit's user (exit 0, and 1 for a broken file); systemd-analyze
#   verify on the unit;
#   a modified /etc/splitrelay/splitrelay.toml survives a reinstall;
#   rpm -qpi / -qpl on the .rpm.
# It leaves the machine as it found it: the package is purged and the
# splitrelay user removed (if this script created them).
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

say() { echo "package-test: $*"; }
die() { echo "package-test: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ] || ! command -v dpkg >/dev/null; then
	say "skipped: needs root on Debian (installs and purges the package)"
	exit 0
fi
if dpkg -s splitrelay >/dev/null 2>&1; then
	say "skipped: a splitrelay package is already installed here; not touching it"
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v rpm >/dev/null || need+=(rpm)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${need[@]}"
fi

arch=$(dpkg --print-architecture)
rm -f dist/splitrelay*.deb dist/splitrelay*.rpm
ARCHS=$arch contrib/scripts/package.sh
deb=$(ls dist/splitrelay_*_"$arch".deb)
rpmfile=$(ls dist/splitrelay-*.rpm)

user_existed=0
getent passwd splitrelay >/dev/null && user_existed=1
cleanup() {
	dpkg --purge splitrelay >/dev/null 2>&1 || true
	if [ "$user_existed" = 0 ] && getent passwd splitrelay >/dev/null; then
		userdel splitrelay || true
	fi
}
trap cleanup EXIT

say "lintian $deb"
# lintian exits non-zero on errors; --fail-on error makes that explicit.
lintian --fail-on error --tag-display-limit 0 --show-overrides "$deb" 2>&1 | grep -v '^running with root privileges' || true
lintian --fail-on error "$deb" >/dev/null 2>&1 || die "lintian reports errors"

say "MTA-neutral: depends on postfix | sendmail-bin; scripts never touch an MTA's configuration"
dpkg-deb -f "$deb" Depends | grep -q 'postfix | sendmail-bin' || die "Depends is '$(dpkg-deb -f "$deb" Depends)', want postfix | sendmail-bin"
ctrl=$(mktemp -d)
dpkg-deb -e "$deb" "$ctrl"
# Code only: the comments say what the scripts do not do, a message (a
# here-document) may tell the administrator what to run, and reading the
# MTA's configuration to decide whether to say it ([ -f … ], grep -qs …)
# changes nothing.
code() {
	awk -v q="'" '
		tag != "" { if ($0 == tag) tag = ""; next }
		{ sub(/^[[:space:]]*#.*/, "") }
		match($0, /<<[^ ]+/) { tag = substr($0, RSTART + 2, RLENGTH - 2); gsub(q, "", tag) }
		{ print }
	' "$@" | sed -E 's#\[ -[efd] /etc/(postfix|mail)/[^]]*\]##g; s#grep -qs [^ ]+ /etc/(postfix|mail)/[^ ;]*##g'
}
if code "$ctrl"/postinst "$ctrl"/prerm "$ctrl"/postrm |
	grep -nE '/etc/(postfix|mail)|postconf|postfix (reload|restart)|sendmailconfig|/etc/init.d/(postfix|sendmail)|(systemctl|invoke-rc.d|deb-systemd-invoke) [a-z-]+ (postfix|sendmail)'; then
	rm -rf "$ctrl"
	die "a maintainer script touches the MTA (above)"
fi
rm -rf "$ctrl"
echo ok

say "dpkg -i $deb"
if ! dpkg -i "$deb"; then
	apt-get install -f -y -q
fi
dpkg -s splitrelay | grep -q '^Status: install ok installed' || die "not installed"

say "installed check"
/usr/sbin/splitrelay version
/usr/sbin/splitrelay check -c /etc/splitrelay/splitrelay.toml || die "installed default config does not validate"

say "socket directory"
got=$(stat -c '%U:%G %a' /var/spool/postfix/splitrelay)
[ "$got" = "splitrelay:postfix 750" ] || die "/var/spool/postfix/splitrelay is $got, want splitrelay:postfix 750"
echo "/var/spool/postfix/splitrelay $got"
got=$(stat -c '%U:%G %a' /var/lib/splitrelay)
[ "$got" = "splitrelay:postfix 750" ] || die "/var/lib/splitrelay is $got, want splitrelay:postfix 750"
echo "/var/lib/splitrelay $got"
id splitrelay
[ "$(id -gn splitrelay)" = postfix ] || die "splitrelay's group is $(id -gn splitrelay), want postfix"
[ -d /run/splitrelay ] || die "no /run/splitrelay (the socket directory for Sendmail hosts, tmpfiles)"
# The daemon as the unit runs it creates a socket Postfix can reach.
# (setpriv: User=splitrelay Group=postfix without systemd.)
if command -v setpriv >/dev/null; then
	setpriv --reuid splitrelay --regid postfix --init-groups \
		/usr/sbin/splitrelay run -c /etc/splitrelay/splitrelay.toml 2>/dev/null &
	pid=$!
	for _ in $(seq 100); do
		[ -S /var/spool/postfix/splitrelay/milter.sock ] && break
		sleep 0.1
	done
	got=$(stat -c '%U:%G %a' /var/spool/postfix/splitrelay/milter.sock 2>/dev/null || echo missing)
	# ExecReload=: the daemon's answer decides, as its own user.
	reload() {
		setpriv --reuid splitrelay --regid postfix --init-groups \
			/usr/sbin/splitrelay reload -c /etc/splitrelay/splitrelay.toml --pid "$pid"
	}
	rtmp=$(mktemp -d)
	reload_ok=yes
	reload || reload_ok="no: exit $?"
	cp -p /etc/splitrelay/splitrelay.toml "$rtmp/splitrelay.toml.orig"
	echo 'no_such_key = 1' >>/etc/splitrelay/splitrelay.toml
	reload_refused=no
	reload 2>"$rtmp/reload.err" || reload_refused=yes
	cp -p "$rtmp/splitrelay.toml.orig" /etc/splitrelay/splitrelay.toml
	reload_err=$(cat "$rtmp/reload.err")
	rm -rf "$rtmp"
	kill -TERM "$pid"
	wait "$pid" || true
	[ "$got" = "splitrelay:postfix 660" ] || die "milter.sock is $got, want splitrelay:postfix 660"
	echo "/var/spool/postfix/splitrelay/milter.sock $got"
	[ "$reload_ok" = yes ] || die "splitrelay reload of the default config: $reload_ok"
	if [ "$reload_refused" != yes ] || ! grep -q 'no_such_key: unknown key' <<<"$reload_err"; then
		die "splitrelay reload of a broken config did not fail: $reload_err"
	fi
	echo "splitrelay reload: ok, and refused a broken file: $(head -1 <<<"$reload_err")"
fi

if command -v systemd-analyze >/dev/null; then
	say "systemd-analyze verify"
	out=$(systemd-analyze verify /lib/systemd/system/splitrelay.service 2>&1 || true)
	# Documentation=man: pages are checked with man(1), absent on minimal
	# systems; anything else is a problem with the unit.
	bad=$(printf '%s\n' "$out" | grep -v "Command 'man " | grep -v '^$' || true)
	[ -z "$bad" ] || die "systemd-analyze verify: $bad"
	echo "ok"
fi

say "reinstall over a modified config"
sed -i 's/^domains = \["example.com"\]/domains = ["example.com", "package-test.example"]/' /etc/splitrelay/splitrelay.toml
grep -q package-test.example /etc/splitrelay/splitrelay.toml || die "could not modify the config"
dpkg -i "$deb"
grep -q package-test.example /etc/splitrelay/splitrelay.toml || die "reinstall overwrote the modified config"
/usr/sbin/splitrelay check -c /etc/splitrelay/splitrelay.toml | grep -q package-test.example || die "modified config not in effect"
echo "the modification survived: $(grep '^domains' /etc/splitrelay/splitrelay.toml)"

say "rpm -qpi / -qpl $rpmfile"
rpm -qpi "$rpmfile"
files=$(rpm -qpl "$rpmfile")
echo "$files"
configs=$(rpm -qpc "$rpmfile")
grep -qx /etc/splitrelay/splitrelay.toml <<<"$configs" || die "rpm: the config is not a %config file"
grep -qx /usr/lib/systemd/system/splitrelay.service <<<"$files" || die "rpm: no unit"
grep -qx /usr/sbin/splitrelay <<<"$files" || die "rpm: no binary"

say "purge"
dpkg --purge splitrelay
[ ! -e /var/spool/postfix/splitrelay ] || die "purge left /var/spool/postfix/splitrelay"
[ ! -e /run/splitrelay ] || die "purge left /run/splitrelay"
[ ! -e /var/lib/splitrelay ] || die "purge left /var/lib/splitrelay"
[ ! -e /etc/splitrelay/splitrelay.toml ] || die "purge left the config"
[ ! -e /etc/systemd/system/multi-user.target.wants/splitrelay.service ] || die "purge left the unit enabled"
say "ok"
