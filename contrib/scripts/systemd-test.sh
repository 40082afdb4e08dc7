#!/usr/bin/env bash
# systemd-test.sh — the .deb under a real systemd, as an administrator meets
# it: boots a Debian 12 container (systemd-nspawn on a debootstrap tree) that
# installs the package and checks the unit: Type=notify reaches active with
# a STATUS= line, `systemctl reload` succeeds for a good file and FAILS for
# a broken one (the daemon keeps running, `journalctl -p err` shows why),
# and the watchdog restarts a daemon whose probe cannot reach its socket or
# that hangs (SIGSTOP). Not part of `make test` (it downloads ~100 MB once
# and boots a container); run it by hand, as root:
#
#   contrib/scripts/systemd-test.sh [ROOT]
#
# ROOT (default /var/tmp/splitrelay-nspawn) is created with
# `debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,postfix
# bookworm` on first use and reused after. The machine's own services are
# not touched: the container runs with --register=no --keep-unit.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
cd "$(dirname "$0")/../.."

die() { echo "systemd-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, systemd-nspawn)"
for b in debootstrap systemd-nspawn; do
	command -v "$b" >/dev/null || die "$b not found: apt-get install debootstrap systemd-container"
done
root=${1:-/var/tmp/splitrelay-nspawn}

if [ ! -x "$root/usr/bin/systemctl" ]; then
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,postfix \
		bookworm "$root" http://deb.debian.org/debian
fi

arch=$(dpkg --print-architecture)
rm -f dist/splitrelay_*.deb
ARCHS=$arch contrib/scripts/package.sh >/dev/null
deb=$(ls dist/splitrelay_*_"$arch".deb)
cp "$deb" "$root/root/splitrelay.deb"

# The scenario runs inside the container at boot, then powers it off.
cat >"$root/root/splitrelay-test.sh" <<'EOF'
#!/bin/bash
exec >/root/splitrelay-test.out 2>&1
fail() { echo "FAIL: $*"; exit 1; }
set -x
dpkg --purge splitrelay >/dev/null 2>&1
dpkg -i /root/splitrelay.deb || fail "dpkg -i"
systemctl is-active splitrelay || fail "not active after install"
sleep 20 # one watchdog period: WATCHDOG=1 must have kept it alive
systemctl status splitrelay --no-pager -l
status=$(systemctl show splitrelay -p StatusText --value)
[[ $status == config\ * ]] || fail "no STATUS= line: $status"
systemctl reload splitrelay || fail "reload of the good file"
conf=/etc/splitrelay/splitrelay.toml
cp -p $conf /root/good.toml
printf '\n[directroy]\nusers = ["x@example.com"]\n' >>$conf
pid=$(systemctl show splitrelay -p MainPID --value)
systemctl reload splitrelay && fail "reload of a broken file succeeded"
systemctl is-active splitrelay || fail "not active after a refused reload"
[ "$(systemctl show splitrelay -p MainPID --value)" = "$pid" ] || fail "restarted by a refused reload"
systemctl show splitrelay -p StatusText --value | grep -q 'RELOAD REFUSED' || fail "STATUS= does not say the reload was refused"
journalctl -b -u splitrelay -p err --no-pager | tee /root/err.txt
grep -q 'unknown table; did you mean \[directory\]' /root/err.txt || fail "journalctl -p err does not show the refusal"
cp -p /root/good.toml $conf
systemctl reload splitrelay || fail "reload of the restored file"
# the probe cannot reach the daemon's socket: watchdog restart
pid=$(systemctl show splitrelay -p MainPID --value)
chmod 000 /var/spool/postfix/splitrelay/milter.sock
sleep 50
journalctl -b -u splitrelay --no-pager | grep -E 'watchdog probe failed|Watchdog timeout' || fail "no watchdog timeout after a failing probe"
[ "$(systemctl show splitrelay -p MainPID --value)" != "$pid" ] || fail "not restarted after a failing probe"
# a hung daemon: watchdog restart
pid=$(systemctl show splitrelay -p MainPID --value)
kill -STOP "$pid"
sleep 50
[ "$(systemctl show splitrelay -p MainPID --value)" != "$pid" ] || fail "not restarted after SIGSTOP"
systemctl is-active splitrelay || fail "not active after the watchdog restarts"
dpkg --purge splitrelay
echo OK
EOF
chmod 755 "$root/root/splitrelay-test.sh"
cat >"$root/etc/systemd/system/splitrelay-test.service" <<'EOF'
[Unit]
Description=splitrelay package test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/splitrelay-test.sh
ExecStopPost=/bin/systemctl poweroff
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/splitrelay-test.service "$root/etc/systemd/system/multi-user.target.wants/splitrelay-test.service"
rm -f "$root/root/splitrelay-test.out"

timeout 600 systemd-nspawn -D "$root" -b --register=no --keep-unit --console=passive >/dev/null 2>&1 || true
rm -f "$root/etc/systemd/system/multi-user.target.wants/splitrelay-test.service"
cat "$root/root/splitrelay-test.out" 2>/dev/null || die "the container produced no result"
[ "$(tail -1 "$root/root/splitrelay-test.out")" = OK ] || die "see above"
echo "systemd-test: ok"
