#!/bin/bash
# Sourced by the shell harnesses: a private PostgreSQL 15 cluster under the
# harness's temp dir, on a unix socket only (no TCP listener), trust auth and
# no fsync: a throwaway database for services under test, never the
# system's cluster. initdb refuses to run as root, so as root the cluster
# belongs to the postgres user; otherwise to the caller.
# shellcheck disable=SC2034   # PGBIN is used by the sourcing scripts

PGBIN=/usr/lib/postgresql/15/bin
PG_BINARIES=("$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/psql")

pg_as_owner() {   # CMD... : run as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

# pg_cluster_up DIR ROLE [DATABASE...]: initdb DIR/data, serve DIR/sock, create
# the superuser ROLE and each DATABASE (owned by ROLE). Server log: DIR/postgres.log,
# initdb's output: DIR.initdb.out. Prints nothing; fails with the log on error.
pg_cluster_up() {
  local d=$1 role=$2 db; shift 2
  mkdir -p "$d/sock"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 755 "$(dirname "$d")"     # the postgres user must reach DIR
    chown -R postgres:postgres "$d"
  fi
  chmod 700 "$d"
  pg_as_owner "$PGBIN/initdb -D $d/data -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8" \
    > "$d.initdb.out" 2>&1 || { cat "$d.initdb.out" >&2; return 1; }
  cat >> "$d/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$d/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 64MB
CONF
  pg_as_owner "$PGBIN/pg_ctl -D $d/data -l $d/postgres.log -w start" > /dev/null \
    || { tail -20 "$d/postgres.log" >&2; return 1; }
  "$PGBIN/psql" -h "$d/sock" -U postgres -d postgres -qc "CREATE ROLE $role SUPERUSER LOGIN" || return 1
  for db in "$@"; do
    "$PGBIN/psql" -h "$d/sock" -U "$role" -d postgres -qc "CREATE DATABASE $db" || return 1
  done
}

pg_cluster_pid() { head -1 "$1/data/postmaster.pid" 2>/dev/null; }   # DIR

pg_cluster_down() {   # DIR : fast shutdown (open sessions are cut)
  [ -f "$1/data/postmaster.pid" ] || return 0
  pg_as_owner "$PGBIN/pg_ctl -D $1/data -m fast -w stop" > /dev/null 2>&1
}

# pg_cluster_url DIR ROLE DATABASE: SQLAlchemy URL over the unix socket.
pg_cluster_url() { echo "postgresql+psycopg2://$2@/$3?host=$1/sock"; }
