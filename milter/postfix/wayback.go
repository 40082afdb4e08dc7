package postfix

// The way back: how detach gives the site its main.cf and master.cf again.
//
// Taking our settings out with postconf(1) keeps their meaning but not
// always their bytes: "postconf -e" writes a parameter on one line, so a
// value the site spread over continuation lines (main.cf lines that start
// with white space, postconf(5)) comes back joined, with comment and blank
// lines that were inside it left below it; and a parameter set twice (the
// last one counts) gets the new value in both places, so the overridden
// first one is lost. Only a copy of the file is exact.
//
// So the first attach keeps its copies of main.cf and master.cf (the ones
// every run makes before changing anything) as the way back, and every
// attach run records in the record file, next to our elements and values:
//
//	backup        FILE  the copy made before splitrelay first changed FILE
//	backup_sha256 FILE  that copy's SHA-256, so a copy changed or lost since is not used
//	sha256        FILE  FILE's SHA-256 as this run left it
//	edited        FILE  when a run found FILE changed by someone else since the previous run
//
// FILE is main.cf or master.cf. The copy stays the way back only while
// nobody else changes the file: a run that finds the file differing from
// the SHA-256 the previous run left marks it edited, for good, since the
// copy no longer holds the site's own change. Detach then decides per file:
// one that still has the recorded SHA-256 and was never marked edited is
// restored from the copy with "cp -p" (byte for byte; owner, mode and times
// as before attaching); any other is worked on with postconf as before,
// with a warning that names the file, says what postconf cannot keep, and
// where the copy is. Each file is judged on its own: restoring an
// untouched main.cf is exact whatever happened to master.cf, since the
// copy differs from the current file only by what splitrelay wrote.
//
// The SHA-256 comes from sha256sum (GNU coreutils); without it nothing
// can be verified and detach uses postconf.

// wayBackStart, at the start of the attach script, notes whether an
// earlier run stopped half way: it leaves "$rec.new" behind (a finished run
// renames it; one stopped by the map check has not written it yet). Copies
// made then are no way back, and none made now is one either: the files
// may hold part of our changes, and the administrator may have edited them
// to get past whatever stopped that run. Erring this way costs only
// exactness (detach uses postconf), never the site's own change.
const wayBackStart = `stopped=
[ ! -f "$rec.new" ] || stopped=1
`

// wayBackAttach, in the attach script before anything is written, carries
// the way back over from the previous run's record into "$rec.new", marking
// a file edited when it no longer has the SHA-256 that run left.
const wayBackAttach = `
# The way back (see detach): the copies from before splitrelay first
# changed main.cf and master.cf, valid while nobody else changes them.
for f in main.cf master.cf; do
	b=$(recval backup "$f" "$rec") || continue
	printf 'backup\t%s\t%s\nbackup_sha256\t%s\t%s\n' "$f" "$b" "$f" "$(recval backup_sha256 "$f" "$rec")" >> "$rec.new"
	if e=$(recval edited "$f" "$rec"); then
		printf 'edited\t%s\t%s\n' "$f" "$e" >> "$rec.new"
	elif [ "$(filesum "$cfgdir/$f")" != "$(recval sha256 "$f" "$rec")" ]; then
		printf 'edited\t%s\t%s\n' "$f" "$(date +%Y%m%d%H%M%S)" >> "$rec.new"
		echo "# $f was changed since splitrelay last attached: detach will take splitrelay out of it with postconf instead of restoring $b"
	fi
done
`

// wayBackFirst, in the attach script right after the copies are made,
// records them as the way back when this is the first attach (no record
// yet) and no earlier one stopped half way.
const wayBackFirst = `	if [ -n "$stopped" ] && [ ! -f "$rec" ]; then
		echo "# an earlier run of this script stopped half way: detach will take splitrelay out with postconf (the copies from before that run are *.splitrelay-* in the Postfix configuration directory)"
	elif [ ! -f "$rec" ]; then
		# the first attach: these copies are the way back
		for f in main.cf master.cf; do
			printf 'backup\t%s\t%s\nbackup_sha256\t%s\t%s\n' "$f" "$cfgdir/$f.splitrelay-$stamp" "$f" "$(filesum "$cfgdir/$f.splitrelay-$stamp")" >> "$rec.new"
		done
	fi
`

// wayBackSums, at the end of the attach script, records main.cf and
// master.cf as this run left them.
const wayBackSums = `for f in main.cf master.cf; do
	printf 'sha256\t%s\t%s\n' "$f" "$(filesum "$cfgdir/$f")" >> "$rec.new"
done
`

// wayBackDetach, at the start of the detach script, decides per file
// whether the copy from before attaching comes back (back_main,
// back_master: the copy; copyback: the files that differ from it) or
// postconf takes our settings out, and warns about the latter. It says
// nothing without a record: then nothing was attached.
const wayBackDetach = `
# The way back: a file that nobody but splitrelay changed since the copy
# made before attaching gets that copy back, byte for byte (cp -p keeps
# owner and mode); any other is worked on with postconf, which cannot
# keep every byte.
back_main=
back_master=
copyback=
if [ -f "$rec" ]; then
	for f in main.cf master.cf; do
		b=$(recval backup "$f" "$rec") || b=
		now=$(filesum "$cfgdir/$f")
		if [ -z "$b" ]; then
			why="splitrelay recorded no copy of it from before attaching"
		elif [ -z "$now" ]; then
			why="sha256sum cannot tell whether it was changed since"
		elif recval edited "$f" "$rec" > /dev/null || [ "$now" != "$(recval sha256 "$f" "$rec")" ]; then
			why="it was changed after splitrelay attached"
		elif [ "$(filesum "$b")" != "$(recval backup_sha256 "$f" "$rec")" ]; then
			why="its copy from before attaching is missing or was changed"
		else
			eval "back_${f%.cf}=\$b"
			[ "$now" = "$(recval backup_sha256 "$f" "$rec")" ] || copyback="$copyback $f"
			continue
		fi
		echo "# WARNING: $f is not restored from its copy from before attaching: $why."
		if [ "$f" = main.cf ]; then
			echo "# WARNING: main.cf: postconf takes out only what splitrelay added and writes each parameter splitrelay touched on one line: a value that spanned several lines comes back joined (same meaning; comment lines inside it stay below it), and a parameter set twice gets its last value in both places."
		else
			echo "# WARNING: master.cf: only the splitrelay-* services are removed (postconf -MX)."
		fi
		[ -z "$b" ] || echo "# WARNING: $f as it was before attaching: $b"
	done
fi
`

// wayBackRestore, in the detach script after the copies of the current
// files are made, puts the copies from before attaching back: "cp -p" next
// to the file, then a rename over it, so that a Postfix program starting
// meanwhile reads the old file or the restored one, never half of one
// (postconf -e replaces main.cf the same way).
const wayBackRestore = `	for f in $copyback; do
		b=$(eval "printf '%s' \"\$back_${f%.cf}\"")
		cp -p "$b" "$cfgdir/.$f.splitrelay-restore"
		mv -f "$cfgdir/.$f.splitrelay-restore" "$cfgdir/$f"
		echo "# $f: restored from $b, as it was before splitrelay attached"
	done
`
