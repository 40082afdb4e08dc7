#!/usr/bin/env bash
# demo.sh — splitrelay in front of a real Postfix, end to end, on loopback.
#
# A private Postfix (contrib/scripts/lib.sh) relays example.com to three
# smtp-sinks standing in for real servers:
#   gmail    the primary system: normal delivery for example.com
#   legacy   the old on-prem server (route "legacy")
#   archive  a journaling archive (route "archive")
# splitrelay gets a configuration with two users, one group and two rules
# (unknown addresses stay on legacy; mail to sales@ is also copied to the
# archive), is attached with `splitrelay postfix --format postconf | sh`,
# and four sample messages are sent with swaks. The table at the end shows,
# for each recipient of each message, which sink(s) it landed in and the
# RCPT TO that sink saw; then the log lines of splitrelay and Postfix.
#
# Exit status 0 when every recipient landed exactly where expected.
# KEEP=1 keeps the temporary directory (configs, logs, sink dumps).
set -euo pipefail
# shellcheck source=contrib/scripts/lib.sh
. "$(dirname "$0")/lib.sh"

need postfix postconf smtp-sink swaks setpriv
build
start_cleanup_trap
make_work splitrelay-demo

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

smtpd_port=$(free_port)
declare -A sink_port
for s in gmail legacy archive; do
	sink_port[$s]=$(free_port)
	sink_start "$s" "${sink_port[$s]}" "$WORK/sinks/$s"
done
pf_setup "$WORK/postfix" "$smtpd_port" example.com
pf_transport example.com "smtp:[127.0.0.1]:${sink_port[gmail]}"
pf_start

config=$WORK/splitrelay.toml
cat >"$config" <<EOF
[milter]
listen = "unix:$PF_DIR/spool/splitrelay/milter.sock"

[log]
level = "info"
format = "text"

[organization]
domains = ["example.com"]

[directory]
users = ["alice@example.com", "bob@example.com"]

[directory.groups]
"sales@example.com" = ["alice@example.com", "bob@example.com"]

[routes.legacy]
description = "The old on-prem server (smtp-sink 'legacy')"
host = "127.0.0.1"
port = ${sink_port[legacy]}
require_tls = false

[routes.archive]
description = "Journaling archive (smtp-sink 'archive')"
host = "127.0.0.1"
port = ${sink_port[archive]}
require_tls = false

[[split_delivery]]
name = "Unknown addresses stay on the legacy server"
messages = ["inbound", "internal"]
accounts = ["unrecognized"]
route = "legacy"

[[split_delivery]]
name = "Sales mail is archived"
messages = ["inbound", "internal"]
accounts = ["users", "groups", "unrecognized"]
route = "archive"
also_deliver = true
[split_delivery.envelope]
recipients = ["address:sales@example.com"]
EOF

bold "== Postfix on 127.0.0.1:$smtpd_port; sinks: gmail :${sink_port[gmail]}, legacy :${sink_port[legacy]}, archive :${sink_port[archive]}"
echo "example.com is relayed to gmail (transport table); everything else is splitrelay's doing."
echo
bold "== $config"
sed 's/^/  /' "$config"
echo
bold "== splitrelay check -c $config"
"$SPLITRELAY" check -c "$config" | sed 's/^/  /'
echo

splitrelay_start "$config" "$WORK/splitrelay.log"
splitrelay_attach "$config"
bold "== attached with: splitrelay postfix -c CONFIG --format postconf --postfix-config-dir DIR --map-dir DIR | sh"
for p in smtpd_milters transport_maps smtpd_recipient_restrictions; do
	printf '  %s = %s\n' "$p" "$(pc -h "$p")"
done
pc -M | awk '$1 ~ /^splitrelay-/ { print "  master.cf: " $0 }'
echo

# The sample mail: subject and recipients. expect: subject|recipient|sinks.
subjects=("demo 1: to alice" "demo 2: to carol (unknown)" "demo 3: to sales (a group)" "demo 4: to alice, carol and sales")
recipients=("alice@example.com" "carol@example.com" "sales@example.com" "alice@example.com,carol@example.com,sales@example.com")
expect=(
	"demo 1: to alice|alice@example.com|gmail"
	"demo 2: to carol (unknown)|carol@example.com|legacy"
	"demo 3: to sales (a group)|sales@example.com|archive gmail"
	"demo 4: to alice, carol and sales|alice@example.com|gmail"
	"demo 4: to alice, carol and sales|carol@example.com|legacy"
	"demo 4: to alice, carol and sales|sales@example.com|archive gmail"
)

bold "== sending (swaks, from sender@external.test: inbound mail)"
queue_ids=()
for i in "${!subjects[@]}"; do
	tr=$WORK/swaks-$((i + 1)).txt
	code=0
	swaks --server "127.0.0.1:$smtpd_port" --helo client.test --from sender@external.test \
		--to "${recipients[i]}" --h-Subject "${subjects[i]}" --body "This is ${subjects[i]}." \
		--timeout 30s >"$tr" 2>&1 || code=$?
	reply=$(grep -E '^<[-*~]+ +[0-9]{3} ' "$tr" | tail -2 | head -1 | sed 's/^<[-*~]* *//')
	printf '  %-36s -> %s (swaks exit %d)\n' "${subjects[i]}" "$reply" "$code"
	id=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' "$tr" | head -1)
	[ -n "$id" ] && queue_ids+=("$id")
done
echo

# found: one line per RCPT TO a sink saw: subject TAB address TAB sink TAB args.
collect() {
	local s f subj args addr
	for s in gmail legacy archive; do
		for f in "$WORK/sinks/$s"/*; do
			[ -f "$f" ] || continue
			subj=$(grep -m1 '^Subject: ' "$f" | cut -c10-)
			grep '^X-Rcpt-Args: ' "$f" | cut -c14- | while IFS= read -r args; do
				addr=${args%%>*}
				printf '%s\t%s\t%s\t%s\n' "$subj" "${addr#<}" "$s" "$args"
			done
		done
	done | sort
}

# Wait until Postfix has delivered everything (a sink closes its dump
# before it answers the final dot).
deadline=$((SECONDS + 30))
until postqueue -c "$PF_DIR/etc" -p | grep -q 'Mail queue is empty'; do
	[ $SECONDS -lt $deadline ] || { echo "  (queue not empty after 30s)"; postqueue -c "$PF_DIR/etc" -p | sed 's/^/  /'; break; }
	sleep 0.2
done
found=$(collect)

bold "== where each recipient landed"
printf '%-36s %-19s %-15s %-6s %s\n' message recipient "sink(s)" result "RCPT TO as the sink saw it"
bad=0
for e in "${expect[@]}"; do
	IFS='|' read -r subj rcpt want <<<"$e"
	rows=$(printf '%s\n' "$found" | awk -F'\t' -v s="$subj" -v r="$rcpt" '$1 == s && $2 == r')
	got=$(printf '%s\n' "$rows" | awk -F'\t' 'NF { print $3 }' | sort | xargs)
	result=ok
	[ "$got" = "$want" ] || { result="WANT $want"; bad=1; }
	first=1
	if [ -z "$rows" ]; then
		printf '%-36s %-19s %-15s %-6s %s\n' "$subj" "$rcpt" "(none)" "$result" "-"
	fi
	while IFS=$'\t' read -r _ _ sink args; do
		[ -n "${sink:-}" ] || continue
		if [ $first = 1 ]; then
			printf '%-36s %-19s %-15s %-6s %s\n' "$subj" "$rcpt" "$got" "$result" "$sink: RCPT TO:$args"
			first=0
		else
			printf '%-36s %-19s %-15s %-6s %s\n' "" "" "" "" "$sink: RCPT TO:$args"
		fi
	done <<<"$rows"
done
# Anything a sink received that no expectation names.
unexpected=$(printf '%s\n' "$found" | while IFS=$'\t' read -r subj addr sink args; do
	[ -n "$subj" ] || continue
	hit=0
	for e in "${expect[@]}"; do
		IFS='|' read -r es er ew <<<"$e"
		[ "$es" = "$subj" ] && [ "$er" = "$addr" ] && [[ " $ew " == *" $sink "* ]] && hit=1
	done
	[ $hit = 1 ] || printf '  UNEXPECTED: %s: %s received RCPT TO:%s\n' "$subj" "$sink" "$args"
done)
if [ -n "$unexpected" ]; then
	echo "$unexpected"
	bad=1
fi
echo

bold "== splitrelay's log ($WORK/splitrelay.log)"
sed 's/^/  /' "$WORK/splitrelay.log"
echo
bold "== Postfix's log for these messages ($PF_DIR/postfix.log)"
if [ ${#queue_ids[@]} -gt 0 ]; then
	pattern=$(IFS='|'; echo "${queue_ids[*]}")
	grep -E "($pattern)" "$PF_DIR/postfix.log" | sed 's/^/  /'
fi
echo
if [ $bad = 0 ]; then
	bold "demo: every recipient landed where the rules say."
else
	bold "demo: some recipients did not land where expected (see above)."
	exit 1
fi
