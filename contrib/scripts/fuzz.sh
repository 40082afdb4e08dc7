#!/usr/bin/env bash
# fuzz.sh — run every Fuzz target of the module for FUZZTIME (default 30s)
# each. Targets are discovered with `go test -list`; a crasher is written to
# the package's testdata/fuzz/ and fails the run (commit it with its fix).
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"
cd "$(dirname "$0")/../.."
FUZZTIME=${FUZZTIME:-30s}

# `go test -list` prints a package's matching names, then "ok  PKG  TIME".
targets=$(go test -list '^Fuzz' ./... | awk '
	/^Fuzz/ { names[n++] = $1; next }
	/^ok/   { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }')
if [ -z "$targets" ]; then
	echo "fuzz.sh: no Fuzz targets" >&2
	exit 0
fi
count=$(printf '%s\n' "$targets" | wc -l)
echo "fuzz.sh: $count targets, $FUZZTIME each"
while read -r pkg name; do
	echo "== $pkg $name"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done <<<"$targets"
