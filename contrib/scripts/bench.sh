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
# Runs alternate none, milter, none, milter … ROUNDS times and the medians
# are reported, with splitrelay's CPU time per message.
#
# Environment: MESSAGES (2000), SESSIONS (10), ROUNDS (2), KEEP=1 keeps the
# temporary directory.
set -euo pipefail
# shellcheck source=contrib/scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MESSAGES=${MESSAGES:-2000}
SESSIONS=${SESSIONS:-10}
ROUNDS=${ROUNDS:-2}

need postfix postconf smtp-sink smtp-source setpriv
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

# sink_count: messages the sink has received so far.
sink_count() {
	tr '\r' '\n' <"$WORK/sink-sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1 | grep . || echo 0
}

# cpu_ticks PID: user+system clock ticks the process has used.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# set_milter on|off: attach or detach the milter (smtpd_milters only; the
# maps and transports stay) and reload.
set_milter() {
	if [ "$1" = on ]; then pc -e "smtpd_milters=$milters"; else pc -e "smtpd_milters="; fi
	pf reload >/dev/null 2>&1
	sleep 1 # let the old smtpd processes go
}

# run_once LABEL: one smtp-source run; prints msg/s.
run_once() {
	local before want t0 t1 ticks0 ticks1
	before=$(sink_count)
	want=$((before + MESSAGES))
	ticks0=$(cpu_ticks "$milter_pid")
	t0=$(date +%s.%N)
	timeout 600 smtp-source -s "$SESSIONS" -m "$MESSAGES" -t rcpt@example.com -f sender@external.test \
		"127.0.0.1:$smtpd_port" || die "smtp-source failed or timed out"
	local deadline=$((SECONDS + 300))
	while [ "$(sink_count)" -lt "$want" ]; do
		[ $SECONDS -lt $deadline ] || die "the sink has $(sink_count) of $want messages after 300s; queue: $(postqueue -c "$PF_DIR/etc" -p | tail -1)"
		sleep 0.05
	done
	t1=$(date +%s.%N)
	ticks1=$(cpu_ticks "$milter_pid")
	awk -v n="$MESSAGES" -v t0="$t0" -v t1="$t1" -v dt="$((ticks1 - ticks0))" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.1f %.3f\n", n / (t1 - t0), dt / hz * 1000 / n }'
}

# median [FORMAT]: the median of the numbers on stdin, printed with FORMAT
# (default %.1f).
median() {
	sort -n | awk -v f="${1:-%.1f}\n" '{ v[NR] = $1 } END { printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "splitrelay bench: $("$SPLITRELAY" version)"
echo "postfix $(postconf -d -h mail_version), $(nproc) CPUs; smtp-source -s $SESSIONS -m $MESSAGES, one recipient per message, milter on a unix socket"
printf '%-4s %-11s %8s %22s\n' run milter msg/s "splitrelay CPU ms/msg"
none=() with=() cpu=()
run=0
for ((r = 1; r <= ROUNDS; r++)); do
	for mode in none milter; do
		run=$((run + 1))
		if [ "$mode" = none ]; then set_milter off; else set_milter on; fi
		read -r rate ms < <(run_once "$mode")
		if [ "$mode" = none ]; then
			none+=("$rate")
			printf '%-4s %-11s %8s %22s\n' "$run" none "$rate" -
		else
			with+=("$rate") cpu+=("$ms")
			printf '%-4s %-11s %8s %22s\n' "$run" splitrelay "$rate" "$ms"
		fi
	done
done

m_none=$(printf '%s\n' "${none[@]}" | median)
m_with=$(printf '%s\n' "${with[@]}" | median)
m_cpu=$(printf '%s\n' "${cpu[@]}" | median %.3f)
echo
echo "median without milter: $m_none msg/s"
echo "median with splitrelay: $m_with msg/s ($m_cpu ms splitrelay CPU per message)"
awk -v a="$m_with" -v b="$m_none" 'BEGIN { printf "ratio with/without: %.2f\n", a / b }'
routed=$(grep -c 'splitrelay-legacy.*status=sent' "$PF_DIR/postfix.log" || true)
echo "messages delivered through the legacy route: $routed (expected $((ROUNDS * MESSAGES)))"
