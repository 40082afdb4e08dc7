# shellcheck shell=bash
# lib.sh — shared by bench.sh and demo.sh: a private Postfix and smtp-sinks
# on loopback ports, the same recipe as the Go test harness
# milter/postfixtest (read its Start for the reasons behind each setting).
# Source it from bash; it never touches /etc/postfix or the machine's own
# Postfix, and cleanup stops only what it started (by PID, or with
# `postfix -c DIR stop`).

export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
# Any postconf/postfix run without -c reaches the private instance, not
# /etc/postfix. Set by pf_setup.
unset MAIL_CONFIG

PIDS=()     # background processes to stop, by PID
WORK=""     # the temporary directory, removed at exit unless KEEP=1
PF_DIR=""   # the private Postfix's directory (under WORK)
PF_PORT=""  # its smtpd's port on 127.0.0.1

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

need() {
	local b
	for b in "$@"; do
		command -v "$b" >/dev/null || die "$b not found: run 'make deps' (as root)"
	done
	[ "$(id -u)" -eq 0 ] || die "a private Postfix needs root (its master runs as root)"
}

# make_work PREFIX: a fresh 0755 directory under /tmp (the postfix and nobody
# users must reach it), removed by cleanup.
make_work() {
	WORK=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$WORK"
}

# cleanup: stop what we started, newest first, then remove WORK. Installed
# as an EXIT trap by start_cleanup_trap.
cleanup() {
	local i pid
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	if [ -n "$PF_DIR" ] && [ -f "$PF_DIR/spool/pid/master.pid" ]; then
		pf stop >/dev/null 2>&1 || pf abort >/dev/null 2>&1 || true
	fi
	if [ -n "$WORK" ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			echo "kept $WORK (KEEP=1)" >&2
		else
			rm -rf "$WORK"
		fi
	fi
}

start_cleanup_trap() {
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# free_port: a TCP port on 127.0.0.1 nobody listens on, below the kernel's
# ephemeral range.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# wait_port PORT [SECONDS]: until 127.0.0.1:PORT accepts connections.
wait_port() {
	local deadline=$((SECONDS + ${2:-15}))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || die "nothing listens on 127.0.0.1:$1"
		sleep 0.05
	done
}

# pf CMD...: postfix -c for the private instance. Postfix re-reads a
# main.cf changed in the last second or two, 300 ms apart, until it is
# older; backdating it saves up to 2 s per command.
pf() {
	touch -d '-10 seconds' "$PF_DIR/etc/main.cf" "$PF_DIR/etc/master.cf"
	postfix -c "$PF_DIR/etc" "$@"
}

# pc ARGS...: postconf -c for the private instance.
pc() {
	touch -d '-10 seconds' "$PF_DIR/etc/main.cf" "$PF_DIR/etc/master.cf"
	postconf -c "$PF_DIR/etc" "$@"
}

# pf_setup DIR PORT RELAY_DOMAINS [MYNETWORKS]: configure a private Postfix
# in DIR with smtpd on 127.0.0.1:PORT, relaying RELAY_DOMAINS (comma
# separated) through the texthash: table DIR/etc/transport (pf_transport).
pf_setup() {
	PF_DIR=$1 PF_PORT=$2
	local port=$2 relay_domains=$3 mynetworks=${4:-127.0.0.0/8} master svc
	mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/data"
	chown postfix "$PF_DIR/data"
	export MAIL_CONFIG="$PF_DIR/etc"
	: >"$PF_DIR/etc/main.cf" # Postfix's defaults
	: >"$PF_DIR/etc/transport"
	# The package's pristine master.cf; the machine's /etc/postfix is never read.
	master=/usr/share/postfix/master.cf.dist
	[ -r "$master" ] || die "$master not found: is the postfix package installed? (make deps)"
	cp "$master" "$PF_DIR/etc/master.cf"
	pc -F '*/*/chroot = n'
	for svc in $(pc -M | awk '$2 == "inet" { print $1 "/inet" }'); do
		pc -MX "$svc"
	done
	pc -M "127.0.0.1:$port/inet=127.0.0.1:$port inet n - n - - smtpd"
	pc -M postlog/unix-dgram | grep -q . ||
		pc -M 'postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd'
	local refuse="error:5.4.4 no transport for this destination in the private instance"
	pc -e \
		"compatibility_level=3.6" \
		"queue_directory=$PF_DIR/spool" \
		"data_directory=$PF_DIR/data" \
		"inet_interfaces=127.0.0.1" \
		"inet_protocols=ipv4" \
		"maillog_file=$PF_DIR/postfix.log" \
		"maillog_file_prefixes=$PF_DIR" \
		"myhostname=mx.test.example" \
		"mydomain=test.example" \
		"mydestination=" \
		"local_recipient_maps=" \
		"alias_maps=" \
		"alias_database=" \
		"local_transport=error:5.1.1 local delivery is disabled" \
		"relay_transport=$refuse" \
		"default_transport=$refuse" \
		"relay_domains=$relay_domains" \
		"mynetworks=$mynetworks" \
		"transport_maps=texthash:$PF_DIR/etc/transport" \
		"smtpd_relay_restrictions=permit_mynetworks, reject_unauth_destination" \
		"smtp_host_lookup=native" \
		"queue_run_delay=1s" \
		"minimal_backoff_time=1s" \
		"maximal_backoff_time=2s"
}

# pf_transport DOMAIN NEXTHOP: add a transport table entry (before pf_start,
# or reload after).
pf_transport() {
	printf '%s\t%s\n' "$1" "$2" >>"$PF_DIR/etc/transport"
}

# pf_start: start the private Postfix and wait for its smtpd.
pf_start() {
	pf start >/dev/null 2>&1 || { tail -20 "$PF_DIR/postfix.log" >&2; die "postfix start failed"; }
	wait_port "$PF_PORT"
}

# sink_start NAME PORT DUMPDIR|"" [SMTP-SINK OPTIONS...]: an smtp-sink
# named NAME on 127.0.0.1:PORT, dumping each transaction into DUMPDIR (none
# if ""), its output in WORK/sink-NAME.out. Its PID goes to PIDS.
sink_start() {
	local name=$1 port=$2 dump=$3
	shift 3
	local args=(-4 -u nobody -h "$name" "$@")
	if [ -n "$dump" ]; then
		mkdir -p "$dump"
		chown nobody "$dump"
		args+=(-d "$dump/%Y%m%d%H%M%S.")
	fi
	smtp-sink "${args[@]}" "127.0.0.1:$port" 256 >"$WORK/sink-$name.out" 2>&1 &
	PIDS+=($!)
	wait_port "$port"
}

# splitrelay_start CONFIG LOG: `splitrelay run` in the background with group
# postfix, so the smtpd processes (user postfix) may use its 0660 unix
# socket, as the packaged unit arranges. Its PID goes to PIDS; waits for
# the socket named by the config's listen.
splitrelay_start() {
	local config=$1 log=$2 sock
	setpriv --regid postfix --clear-groups "$SPLITRELAY" run -c "$config" >"$log" 2>&1 &
	PIDS+=($!)
	sock=$(sed -n 's/^listen *= *"unix:\(.*\)".*/\1/p' "$config")
	for _ in $(seq 150); do
		[ -S "$sock" ] && return
		kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$log" >&2; die "splitrelay run exited"; }
		sleep 0.1
	done
	cat "$log" >&2
	die "splitrelay does not listen on $sock"
}

# splitrelay_attach CONFIG: apply `splitrelay postfix --format postconf` to
# the private instance (maps in PF_DIR/maps) and reload it — what an
# administrator runs.
splitrelay_attach() {
	"$SPLITRELAY" postfix -c "$1" --format postconf --postfix-config-dir "$PF_DIR/etc" \
		--map-dir "$PF_DIR/maps" --queue-dir "$PF_DIR/spool" >"$WORK/attach.sh"
	touch -d '-10 seconds' "$PF_DIR/etc/main.cf" "$PF_DIR/etc/master.cf"
	sh "$WORK/attach.sh" >/dev/null
	pf reload >/dev/null 2>&1
}

# build: bin/splitrelay from this checkout; sets SPLITRELAY.
build() {
	make -s -C "$ROOT" build >/dev/null
	SPLITRELAY="$ROOT/bin/splitrelay"
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
