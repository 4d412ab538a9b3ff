#!/usr/bin/env bash
# Build and install the pgvector extension (CITEQA_VECTOR_STORE=pgvector, its tests and bench) into
# the Debian PostgreSQL 15 server. Debian bookworm ships no pgvector binary package, but its
# archive has the upstream source; it is fetched from there, checked against a pinned sha256 and
# built with PGXS. Idempotent: does nothing when vector.control is already installed.
# Needs root (or sudo) for apt-get and `make install`.
set -euo pipefail

VERSION=0.8.0
URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${VERSION}.orig.tar.gz"
SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

if [ ! -x "$PG_CONFIG" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15 postgresql-server-dev-15 >/dev/null
fi
if [ ! -e "$("$PG_CONFIG" --includedir-server)/postgres.h" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-server-dev-15 >/dev/null
fi

ext_dir="$("$PG_CONFIG" --sharedir)/extension"
if [ -f "$ext_dir/vector.control" ]; then
  echo "pgvector already installed in $ext_dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball="$work/pgvector_${VERSION}.orig.tar.gz"
cached="${PGVECTOR_TARBALL:-/tmp/pgvector_${VERSION}.orig.tar.gz}"
if [ -f "$cached" ] && echo "$SHA256  $cached" | sha256sum -c --quiet - 2>/dev/null; then
  cp "$cached" "$tarball"
else
  curl -fsSL --retry 3 -o "$tarball" "$URL"
fi
if ! echo "$SHA256  $tarball" | sha256sum -c --quiet -; then
  echo "pgvector tarball sha256 mismatch (expected $SHA256): refusing to build it" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
src=$(find "$work" -maxdepth 1 -mindepth 1 -type d | head -1)
# OPTFLAGS="" : no -march=native, so the build runs on any x86-64 machine it is copied to.
make -C "$src" USE_PGXS=1 PG_CONFIG="$PG_CONFIG" OPTFLAGS="" -j"$(nproc)" >/dev/null
$SUDO make -C "$src" USE_PGXS=1 PG_CONFIG="$PG_CONFIG" install >/dev/null
echo "pgvector $VERSION installed in $ext_dir"
