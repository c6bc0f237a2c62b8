#!/bin/sh
# Entrypoint of the PostgreSQL image the demo assembles offline from the host's Debian packages
# (crates/demo/src/stack/postgres.rs), where no registry answers. It keeps the official image's
# contract, the part the compose files use, so the same files run either image:
#   POSTGRES_USER            the superuser (default postgres)
#   POSTGRES_PASSWORD_FILE   its password, a Docker secret (required on first start)
#   POSTGRES_DB              the database created on first start (default: POSTGRES_USER)
#   PGDATA                   the cluster (default /var/lib/postgresql/data/pgdata)
#   /docker-entrypoint-initdb.d/*.sql   run once, on first start, in POSTGRES_DB
# As root it prepares the directories, copies the password where the server account can read it
# (the secret keeps the host file's owner and mode), then runs itself again as `postgres`.
set -eu
: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA
pwcopy=/var/run/postgresql/.pwfile

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown 999:999 "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD_FILE:-}" ] || [ ! -s "$POSTGRES_PASSWORD_FILE" ]; then
      echo "error: POSTGRES_PASSWORD_FILE must name a non-empty file (a Docker secret) on first start" >&2
      exit 1
    fi
    cat "$POSTGRES_PASSWORD_FILE" > "$pwcopy"
    chown 999:999 "$pwcopy"
    chmod 600 "$pwcopy"
  fi
  exec setpriv --reuid=999 --regid=999 --clear-groups -- /bin/sh "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # Local (socket) connections inside the container are trusted, as in the official image;
  # everything over the network signs in with a SCRAM-SHA-256 password.
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwcopy" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-instructions
  rm -f "$pwcopy"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # The first start: on the socket only, so that no healthcheck passes before the setup is done.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  if [ "$POSTGRES_DB" != postgres ]; then
    echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -v db="$POSTGRES_DB"
  fi
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$f" ] || continue
    echo "running $f"
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -c listen_addresses='*' "$@"
