#!/usr/bin/env bash
# package.sh — build the .deb and .rpm into dist/ with nfpm (a Go tool
# pinned in go.mod: `go tool nfpm`, no downloaded binary).
#   ARCHS="amd64 arm64" (default) — Go/Debian architecture names
#   FORMATS="deb rpm" (default)
# The version comes from git: the newest v* tag (v1.2.3 -> 1.2.3, with
# +N.gSHA after it for later commits), else 0.0.0~git<commit date>.<sha>.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"
cd "$(dirname "$0")/../.."

ARCHS=${ARCHS:-"amd64 arm64"}
FORMATS=${FORMATS:-"deb rpm"}

sha=$(git rev-parse --short=12 HEAD)
if desc=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	# v1.2.3 or v1.2.3-4-gabc1234
	VERSION=${desc#v}
	if [[ $VERSION =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		VERSION="${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
	fi
else
	VERSION="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).${sha}"
fi
export VERSION
echo "package.sh: splitrelay $VERSION ($sha)"

build=dist/build
rm -rf "$build"
mkdir -p "$build"
# Reproducible gzip (-n: no name or time stamp), as Debian policy asks.
gzip -9n -c packaging/man/splitrelay.8 >"$build/splitrelay.8.gz"
gzip -9n -c packaging/man/splitrelay.toml.5 >"$build/splitrelay.toml.5.gz"
gzip -9n -c README.md >"$build/README.md.gz"
date=$(git log -1 --format=%cD)
maint=$(sed -n 's/^maintainer: //p' packaging/nfpm.yaml)
cat >"$build/changelog.Debian" <<CHANGES
splitrelay (${VERSION}-1) unstable; urgency=medium

  * Built from git commit ${sha}; the history is the project's git log.

 -- ${maint}  ${date}
CHANGES
gzip -9n "$build/changelog.Debian"

for arch in $ARCHS; do
	# Static (no cgo, cross-builds) but position-independent: ASLR, as
	# Debian builds Go programs.
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildmode=pie \
		-ldflags "-s -w -X main.version=${VERSION} -X main.commit=${sha}" \
		-o "$build/splitrelay" ./cmd/splitrelay
	for f in $FORMATS; do
		ARCH=$arch go tool nfpm package --config packaging/nfpm.yaml --packager "$f" --target dist/
	done
done
ls -l dist/*.deb dist/*.rpm 2>/dev/null || true
