#!/usr/bin/env bash
# bench.sh — Postfix throughput without and with splitrelay.
#
# A private Postfix (contrib/scripts/lib.sh) relays example.com to an
# smtp-sink. smtp-source sends MESSAGES messages over SESSIONS parallel
# sessions, one recipient each, to rcpt@example.com; a run ends when the
# sink has received them all, so msg/s is end to end (SMTP in, queue, SMTP
# out). With the milter, rcpt@example.com is an unknown address that a rule
# routes to the "legacy" route — the same sink, through splitrelay's
# routing namespace, transport and generic map — so each message costs a
# full routing decision and a recipient rewrite.
#
# The floor is a no-op C libmilter (contrib/bench/noop-milter.c, built here
# with Debian's libmilter-dev, which the script installs as root when it is
# missing): every callback a routing milter needs, each answering continue.
# Both milters listen on unix sockets in Postfix's spool.
#
# Runs alternate none, C no-op, splitrelay … ROUNDS times and the medians
# are reported, with each milter's CPU time per message and the ratios.
#
# With STRACE=1, one more run per milter under `strace -c -f` (attached to
# the running milter) counts its system calls per message: reads (all, and
# those that did not fail: Go's poller makes an EAGAIN read before each
# wait), writes, and everything (poll, epoll, futex…); strace slows the
# milter, so that run's msg/s means nothing and is not printed.
#
# Environment: MESSAGES (2000), SESSIONS (10), ROUNDS (2), STRACE (0),
# KEEP=1 keeps the temporary directory.
set -euo pipefail
# shellcheck source=contrib/scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-10}
ROUNDS=${ROUNDS:-2}
STRACE=${STRACE:-0}

need postfix postconf smtp-sink smtp-source setpriv
if [ ! -e /usr/include/libmilter/mfapi.h ]; then
	command -v apt-get >/dev/null || die "libmilter-dev is missing (the no-op C milter needs it)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmilter-dev >/dev/null || die "apt-get install libmilter-dev failed"
fi
command -v gcc >/dev/null || die "gcc is missing (apt-get install gcc)"
if [ "$STRACE" = 1 ] && ! command -v strace >/dev/null; then
	command -v apt-get >/dev/null || die "strace is missing"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace >/dev/null || die "apt-get install strace failed"
fi
build
start_cleanup_trap
make_work splitrelay-bench

smtpd_port=$(free_port)
sink_port=$(free_port)
pf_setup "$WORK/postfix" "$smtpd_port" example.com
pf_transport example.com "smtp:[127.0.0.1]:$sink_port"
# -c: running counters on stdout ("sess=N quit=N mesg=N"); no dumps, the
# sink must not be the bottleneck.
sink_start sink "$sink_port" "" -c
pf_start

config=$WORK/splitrelay.toml
cat >"$config" <<EOF
[milter]
listen = "unix:$PF_DIR/spool/splitrelay/milter.sock"

[log]
level = "warn"
format = "text"

[organization]
domains = ["example.com"]

[directory]
users = ["alice@example.com"]

[routes.legacy]
description = "bench sink"
host = "127.0.0.1"
port = $sink_port
require_tls = false

[[split_delivery]]
name = "Unknown addresses stay on the legacy server"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"
EOF
"$SPLITRELAY" check -c "$config" >/dev/null
splitrelay_start "$config" "$WORK/splitrelay.log"
milter_pid=${PIDS[-1]}
splitrelay_attach "$config"
milters=$(pc -h smtpd_milters)
[ -n "$milters" ] || die "splitrelay postfix did not set smtpd_milters"

# The no-op C milter, beside ours in the spool, with the same per-milter
# settings.
gcc -O2 -o "$WORK/noop-milter" contrib/bench/noop-milter.c -lmilter || die "cannot build contrib/bench/noop-milter.c"
mkdir -p "$PF_DIR/spool/noop"
chmod 755 "$PF_DIR/spool/noop"
"$WORK/noop-milter" "unix:$PF_DIR/spool/noop/milter.sock" 2>"$WORK/noop-milter.log" &
noop_pid=$!
PIDS+=("$noop_pid")
for _ in $(seq 100); do [ -S "$PF_DIR/spool/noop/milter.sock" ] && break; sleep 0.05; done
[ -S "$PF_DIR/spool/noop/milter.sock" ] || die "the no-op C milter did not start: $(cat "$WORK/noop-milter.log")"
c_milters="{ unix:$PF_DIR/spool/noop/milter.sock, default_action=tempfail, protocol=6 }"

# sink_count: messages the sink has received so far.
sink_count() {
	tr '\r' '\n' <"$WORK/sink-sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | grep . || echo 0
}

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# set_milter none|c|splitrelay: which milter smtpd_milters names (the maps
# and transports stay), then reload.
set_milter() {
	case $1 in
	splitrelay) pc -e "smtpd_milters=$milters" ;;
	c) pc -e "smtpd_milters=$c_milters" ;;
	*) pc -e "smtpd_milters=" ;;
	esac
	pf reload >/dev/null 2>&1
	sleep 1 # let the old smtpd processes go
}

# run_once PID: one smtp-source run; prints msg/s and the CPU ms per
# message of process PID (a milter, or 0 for none).
run_once() {
	local before want t0 t1 ticks0=0 ticks1=0 pid=$1
	before=$(sink_count)
	want=$((before + MESSAGES))
	[ "$pid" = 0 ] || ticks0=$(cpu_ticks "$pid")
	t0=$(date +%s.%N)
	timeout 600 smtp-source -s "$SESSIONS" -m "$MESSAGES" -t rcpt@example.com -f sender@external.test \
		"127.0.0.1:$smtpd_port" || die "smtp-source failed or timed out"
	local deadline=$((SECONDS + 300))
	while [ "$(sink_count)" -lt "$want" ]; do
		[ $SECONDS -lt $deadline ] || die "the sink has $(sink_count) of $want messages after 300s; queue: $(postqueue -c "$PF_DIR/etc" -p | tail -1)"
		sleep 0.05
	done
	t1=$(date +%s.%N)
	[ "$pid" = 0 ] || ticks1=$(cpu_ticks "$pid")
	awk -v n="$MESSAGES" -v t0="$t0" -v t1="$t1" -v dt="$((ticks1 - ticks0))" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.1f %.3f\n", n / (t1 - t0), dt / hz * 1000 / n }'
}

# median [FORMAT]: the median of the numbers on stdin, printed with FORMAT
# (default %.1f).
median() {
	sort -n | awk -v f="${1:-%.1f}\n" '{ v[NR] = $1 } END { printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "splitrelay bench: $("$SPLITRELAY" version)"
echo "postfix $(postconf -d -h mail_version), $(nproc) CPUs; smtp-source -s $SESSIONS -m $MESSAGES, one recipient per message, milters on unix sockets"
printf '%-4s %-11s %8s %18s\n' run milter msg/s "milter CPU ms/msg"
none=() cm=() ccpu=() with=() cpu=()
run=0
for ((r = 1; r <= ROUNDS; r++)); do
	for mode in none c splitrelay; do
		run=$((run + 1))
		set_milter "$mode"
		case $mode in
		none)
			read -r rate ms < <(run_once 0)
			none+=("$rate")
			printf '%-4s %-11s %8s %18s\n' "$run" none "$rate" -
			;;
		c)
			read -r rate ms < <(run_once "$noop_pid")
			cm+=("$rate") ccpu+=("$ms")
			printf '%-4s %-11s %8s %18s\n' "$run" "C no-op" "$rate" "$ms"
			;;
		splitrelay)
			read -r rate ms < <(run_once "$milter_pid")
			with+=("$rate") cpu+=("$ms")
			printf '%-4s %-11s %8s %18s\n' "$run" splitrelay "$rate" "$ms"
			;;
		esac
	done
done

m_none=$(printf '%s\n' "${none[@]}" | median)
m_c=$(printf '%s\n' "${cm[@]}" | median)
m_ccpu=$(printf '%s\n' "${ccpu[@]}" | median %.3f)
m_with=$(printf '%s\n' "${with[@]}" | median)
m_cpu=$(printf '%s\n' "${cpu[@]}" | median %.3f)
echo
echo "median without milter:   $m_none msg/s"
echo "median with C no-op:     $m_c msg/s ($m_ccpu ms milter CPU per message)"
echo "median with splitrelay:  $m_with msg/s ($m_cpu ms milter CPU per message, routing every message)"
awk -v a="$m_with" -v b="$m_none" -v c="$m_c" -v x="$m_cpu" -v y="$m_ccpu" 'BEGIN {
	printf "ratio splitrelay/none: %.2f   splitrelay/C no-op: %.2f msg/s, %.2f CPU\n", a / b, a / c, (y > 0 ? x / y : 0) }'
routed=$(grep -c 'splitrelay-legacy.*status=sent' "$PF_DIR/postfix.log" || true)
echo "messages delivered through the legacy route: $routed (expected $((ROUNDS * MESSAGES)))"

# syscalls_per_message NAME PID MODE: one run of MODE with strace attached
# to PID; prints NAME and its reads, writes and all system calls per
# message (failed ones included: Go's EAGAIN reads, libmilter's timeouts).
syscalls_per_message() {
	local name=$1 pid=$2 out="$WORK/strace-$1.txt" spid
	set_milter "$3"
	strace -c -f -p "$pid" -o "$out" 2>/dev/null &
	spid=$!
	sleep 1 # attached to every thread
	run_once 0 >/dev/null
	kill -INT "$spid"
	wait "$spid" || true
	# strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
	awk -v n="$MESSAGES" -v name="$name" '
		$NF ~ /^(read|recvfrom|recvmsg|readv)$/ { r += $4; if (NF == 6) rerr += $5 }
		$NF ~ /^(write|sendto|sendmsg|writev)$/ { w += $4 }
		$NF == "total" { all = $4 }
		END { printf "%-11s %8.2f %8.2f %8.2f %8.2f\n", name, r / n, (r - rerr) / n, w / n, all / n }' "$out"
}

if [ "$STRACE" = 1 ]; then
	echo
	echo "system calls per message (strace -c -f, one run of $MESSAGES messages each)"
	printf '%-11s %8s %8s %8s %8s\n' milter reads "w/ data" writes all
	syscalls_per_message "C no-op" "$noop_pid" c
	syscalls_per_message splitrelay "$milter_pid" splitrelay
fi
