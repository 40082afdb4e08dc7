#!/usr/bin/env bash
# package-test-sendmail.sh — install the .deb on a Sendmail host: a Debian 12
# chroot (debootstrap, minbase) with sendmail-bin, where Postfix is absent.
# Checks that the dependency is satisfied by sendmail-bin, that the user's
# group is smmsp, that the socket directory is /run/splitrelay and nothing
# is created under /var/spool/postfix, that /etc/mail is byte for byte what
# Sendmail's own installation left, and that purging removes what the
# package made. Not part of `make test` (it downloads a Debian base system,
# a few minutes); run it as root after changing packaging/:
#   contrib/scripts/package-test-sendmail.sh [ROOTFS]
# ROOTFS (default: a new temporary directory) is reused when it exists.
# Every mount is made in a private mount namespace; the chroot's services
# are never started (policy-rc.d).
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

say() { echo "package-test-sendmail: $*"; }
die() { echo "package-test-sendmail: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root"
command -v debootstrap >/dev/null || die "needs debootstrap (apt-get install debootstrap)"

root=${1:-}
if [ -z "$root" ]; then
	tmp=$(mktemp -d /tmp/splitrelay-sendmail-host-XXXXXX)
	trap 'rm -rf "$tmp"' EXIT
	root=$tmp/rootfs
fi
if [ ! -x "$root/usr/bin/apt-get" ]; then
	say "debootstrap bookworm $root"
	debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi

arch=$(dpkg --print-architecture)
rm -f dist/splitrelay*.deb dist/splitrelay*.rpm
ARCHS=$arch contrib/scripts/package.sh >/dev/null
deb=$(ls dist/splitrelay_*_"$arch".deb)
cp "$deb" "$root/tmp/splitrelay.deb"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# shellcheck disable=SC2016 # expanded inside the chroot
unshare -m --propagation private sh -c '
	set -e
	mount -t proc proc "$1/proc"
	chroot "$1" /bin/bash -c "$2"
' sh "$root" '
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
die() { echo "package-test-sendmail: FAIL: $*" >&2; exit 1; }
if ! dpkg -s sendmail-bin >/dev/null 2>&1; then
	apt-get update -q >/dev/null
	apt-get install -y -q sendmail-bin >/dev/null
fi
! dpkg -s postfix >/dev/null 2>&1 || die "postfix is installed in the chroot"
before=$(cd /etc/mail && find . -type f -print0 | sort -z | xargs -0 sha256sum)
dpkg -i /tmp/splitrelay.deb || die "dpkg -i failed (dependency postfix | sendmail-bin?)"
dpkg -s splitrelay | grep -q "^Status: install ok installed" || die "not installed"
echo "installed: $(dpkg -s splitrelay | grep ^Depends)"
[ "$(id -gn splitrelay)" = smmsp ] || die "group of splitrelay is $(id -gn splitrelay), want smmsp"
id splitrelay
[ -d /run/splitrelay ] || die "no /run/splitrelay"
stat -c "/run/splitrelay %U:%G %a" /run/splitrelay
[ ! -e /var/spool/postfix ] || die "the package created /var/spool/postfix on a Sendmail host"
after=$(cd /etc/mail && find . -type f -print0 | sort -z | xargs -0 sha256sum)
[ "$before" = "$after" ] || die "/etc/mail changed"
echo "/etc/mail unchanged"
/usr/sbin/splitrelay check -c /etc/splitrelay/splitrelay.toml >/dev/null
sed -i "s#^listen = .*#listen = \"unix:/run/splitrelay/milter.sock\"#" /etc/splitrelay/splitrelay.toml
/usr/sbin/splitrelay sendmail -c /etc/splitrelay/splitrelay.toml --format mc | grep -q "S=local:/run/splitrelay/milter.sock, F=T" || die "sendmail block"
setpriv --reuid splitrelay --regid smmsp --init-groups /usr/sbin/splitrelay run -c /etc/splitrelay/splitrelay.toml 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -S /run/splitrelay/milter.sock ] && break; sleep 0.1; done
got=$(stat -c "%U:%G %a" /run/splitrelay/milter.sock 2>/dev/null || echo missing)
kill -TERM "$pid"; wait "$pid" || true
[ "$got" = "splitrelay:smmsp 660" ] || die "milter.sock is $got"
echo "/run/splitrelay/milter.sock $got"
dpkg --purge splitrelay >/dev/null
[ ! -e /run/splitrelay ] || die "purge left /run/splitrelay"
after=$(cd /etc/mail && find . -type f -print0 | sort -z | xargs -0 sha256sum)
[ "$before" = "$after" ] || die "/etc/mail changed by the purge"
userdel splitrelay
echo ok
'
say ok
