#!/usr/bin/env bash
# Builds the Debian package sipalg_<version>_amd64.deb from this checkout's build (make build first:
# dist/ and the native addon are reused, not rebuilt):
#
#   packaging/deb.sh [OUTDIR]        (default OUTDIR: build/; `make deb` runs it)
#
# Layout: /usr/lib/sipalg (dist, the addon, production node_modules, the rules script),
# /usr/bin/sipalg, /lib/systemd/system/sipalg.service, /etc/sipalg/sipalg.yaml (a conffile), the man
# pages sipalg(8) and sipalg.yaml(5). The production node_modules come from `npm ci --omit=dev` in a
# staging directory, kept in build/npm-prod-<lockfile hash> so a rebuild does not fetch them again.
# Nothing here needs root: dpkg-deb --root-owner-group makes every file root's in the package.
set -euo pipefail
umask 022
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build}
cd "$ROOT"

die() { echo "packaging/deb.sh: $*" >&2; exit 1; }
ADDON=native/build/Release/sipalg_native.node
[ -f dist/src/cli/main.js ] || die "dist/ is missing: run make build first"
[ -f "$ADDON" ] || die "$ADDON is missing: run make build first"
for tool in dpkg-deb dpkg-shlibdeps gzip npm; do command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev)"; done

VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture)
PKG=sipalg_${VERSION}_${ARCH}
mkdir -p "$OUT"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/sipalg-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOTFS=$STAGE/$PKG
LIB=$ROOTFS/usr/lib/sipalg
DOC=$ROOTFS/usr/share/doc/sipalg
# Dates inside the package (man pages, changelog): the last commit's, so a rebuild is identical.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# ---- the program: compiled JavaScript (no source maps: the TypeScript is not shipped), the addon
install -d "$LIB/dist" "$LIB/native/build/Release" "$LIB/iptables" "$ROOTFS/usr/bin" "$DOC"
(cd dist && find src -name '*.js' -print0 | xargs -0 -I{} install -D -m 0644 {} "$LIB/dist/{}")
install -m 0644 "$ADDON" "$LIB/native/build/Release/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$LIB/$ADDON"
install -m 0755 iptables/sipalg-rules.sh "$LIB/iptables/"
install -m 0644 package.json package-lock.json sipalg.example.yaml "$LIB/"

# ---- production dependencies, fetched once per lockfile
CACHE=$ROOT/build/npm-prod-$(sha256sum package-lock.json | cut -c1-16)
if [ ! -d "$CACHE/node_modules" ]; then
  rm -rf "$CACHE.tmp" && mkdir -p "$CACHE.tmp"
  cp package.json package-lock.json "$CACHE.tmp/"
  (cd "$CACHE.tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"
fi
cp -r "$CACHE/node_modules" "$LIB/"
# node-addon-api holds C++ headers for building the addon: nothing at run time needs it.
rm -rf "$LIB/node_modules/node-addon-api" "$LIB/node_modules/.package-lock.json"
# What the dependencies publish for their own development (tests, docs sites, git and CI files) is
# not part of the program.
find "$LIB/node_modules" -depth \( -type d \( -name test -o -name tests -o -name fixture -o -name fixtures -o -name docs -o -name benchmarks -o -name .github -o -name .husky \) \
  -o -type f \( -name '*.md' -o -name '*.html' -o -name '*.sh' -o -name '.git*' -o -name '.*rc' -o -name '.*rc.*' -o -name '*.map' -o -name '*.ts' -o -name '*.png' -o -name .npmignore \) \) \
  -exec rm -rf {} +
find "$LIB/node_modules" -depth -type d -empty -delete
find "$LIB" -type d -exec chmod 0755 {} + && find "$LIB" -type f -exec chmod 0644 {} +
chmod 0755 "$LIB/iptables/sipalg-rules.sh"
# Scripts (a #! line: the CLI, the dependencies' bin entries) are executable, nothing else.
find "$LIB" -type f -name '*js' -print0 | while IFS= read -r -d '' f; do if [ "$(head -c 2 "$f")" = '#!' ]; then chmod 0755 "$f"; fi; done

# ---- /usr/bin/sipalg: the packaged node, wherever the package root was unpacked (dpkg --root too)
cat > "$ROOTFS/usr/bin/sipalg" <<'SH'
#!/bin/sh
# sipalg(8): runs the JavaScript in /usr/lib/sipalg with the system's Node.js (package nodejs >= 20).
here=$(dirname "$(readlink -f "$0")")
exec node "$here/../lib/sipalg/dist/src/cli/main.js" "$@"
SH
chmod 0755 "$ROOTFS/usr/bin/sipalg"

# ---- configuration (a conffile: dpkg keeps the operator's edits on upgrade) and the unit
install -D -m 0644 sipalg.example.yaml "$ROOTFS/etc/sipalg/sipalg.yaml"
install -d "$ROOTFS/lib/systemd/system"
sed -e 's#/usr/bin/node /opt/sipalg/dist/src/cli/main.js#/usr/bin/sipalg#g' \
    -e 's#^Documentation=.*#Documentation=man:sipalg(8) man:sipalg.yaml(5)#' \
    systemd/sipalg.service > "$ROOTFS/lib/systemd/system/sipalg.service"
chmod 0644 "$ROOTFS/lib/systemd/system/sipalg.service"
grep -q /opt/ "$ROOTFS/lib/systemd/system/sipalg.service" && die "systemd/sipalg.service still names /opt after adapting it"

# ---- man pages, generated from the command table and the config (src/cli/man.ts)
node dist/src/cli/man.js "$STAGE/man" >/dev/null
install -D -m 0644 "$STAGE/man/sipalg.8" "$ROOTFS/usr/share/man/man8/sipalg.8"
install -D -m 0644 "$STAGE/man/sipalg.yaml.5" "$ROOTFS/usr/share/man/man5/sipalg.yaml.5"
gzip -9n "$ROOTFS/usr/share/man/man8/sipalg.8" "$ROOTFS/usr/share/man/man5/sipalg.yaml.5"

# ---- documentation: README, copyright, changelog (a native package: changelog.gz)
install -m 0644 README.md "$DOC/"
install -m 0644 packaging/copyright "$DOC/copyright"
{
  echo "sipalg ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Release $VERSION; see /usr/share/doc/sipalg/README.md."
  echo
  echo " -- sipalg maintainers <sipalg@example.org>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"

# ---- control: the libraries the addon links, as dpkg-shlibdeps derives them from the binary
SHLIBS=$(mkdir -p "$STAGE/shlibs/debian" && cd "$STAGE/shlibs" &&
  printf 'Source: sipalg\n\nPackage: sipalg\nArchitecture: any\n' > debian/control &&
  dpkg-shlibdeps -O "$LIB/$ADDON" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || die "dpkg-shlibdeps found no libraries for $ADDON"
install -d "$ROOTFS/DEBIAN"
# nodejs (>= 20): Debian 12 ships Node 18, which sipalg does not run on (package.json engines); the
# nodejs package of Node 20 or later (NodeSource's, or a later Debian release) satisfies it, and
# without one the install stops with dpkg naming the missing dependency instead of a broken daemon.
# iptables, nftables, conntrack: the rules script, `nft` in doctor and the lab, conntrack for cleanup.
cat > "$ROOTFS/DEBIAN/control" <<CONTROL
Package: sipalg
Version: $VERSION
Architecture: $ARCH
Maintainer: sipalg maintainers <sipalg@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$ROOTFS" | cut -f1)
Depends: nodejs (>= 20), $SHLIBS, iptables, nftables, conntrack
Section: net
Priority: optional
Description: transparent SIP ALG for Linux NAT gateways
 sipalg rewrites the private addresses SIP phones behind a Linux NAT
 gateway write into Via, Contact and SDP to the gateway's public ones, and
 installs kernel DNAT/SNAT mappings (nftables) for each call's media, so
 RTP flows through the kernel. SIP reaches it through an NFQUEUE rule.
 .
 The service is installed but neither enabled nor started, and no
 firewall rule is added: edit /etc/sipalg/sipalg.yaml, check the host
 with "sipalg doctor", then "systemctl enable --now sipalg".
CONTROL
echo /etc/sipalg/sipalg.yaml > "$ROOTFS/DEBIAN/conffiles"
(cd "$ROOTFS" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$ROOTFS/DEBIAN/md5sums"
chmod 0644 "$ROOTFS/DEBIAN/md5sums"
for script in postinst prerm postrm; do install -m 0755 "packaging/$script" "$ROOTFS/DEBIAN/$script"; done

dpkg-deb --root-owner-group -Zxz --build "$ROOTFS" "$OUT/$PKG.deb" >/dev/null
echo "$OUT/$PKG.deb"
