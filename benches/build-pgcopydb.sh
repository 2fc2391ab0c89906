#!/bin/sh
# Builds pgcopydb 0.17 from Debian's source package (Debian 12 packages 0.10, which has no
# `compare` command) into /usr/local/lib/pgcopydb-0.17/pgcopydb, for
# `DTS_BENCH_PGCOPYDB=/usr/local/lib/pgcopydb-0.17/pgcopydb target/release/directions --verify`.
# Needs root (apt-get) and Debian's archive; takes a few minutes.
set -eu
apt-get install -y build-essential curl postgresql-server-dev-15 libgc-dev libncurses-dev \
    libzstd-dev liblz4-dev libkrb5-dev libxslt1-dev libpam0g-dev libselinux1-dev \
    libreadline-dev zlib1g-dev libssl-dev
work=$(mktemp -d)
cd "$work"
curl -fsSO http://deb.debian.org/debian/pool/main/p/pgcopydb/pgcopydb_0.17.orig.tar.gz
echo "7ed96f7bbc0a5250f3b73252c3a88d665df9c8101a89109cde774c3505882fdf  pgcopydb_0.17.orig.tar.gz" | sha256sum -c -
tar xzf pgcopydb_0.17.orig.tar.gz
make -C pgcopydb-0.17 -j"$(nproc)"
install -D pgcopydb-0.17/src/bin/pgcopydb/pgcopydb /usr/local/lib/pgcopydb-0.17/pgcopydb
/usr/local/lib/pgcopydb-0.17/pgcopydb --version
rm -rf "$work"
