#!/bin/sh
# CarePath's roles and database, created on the first start of carepath-db (the
# postgres image runs /docker-entrypoint-initdb.d/ once, on an empty data directory).
#
#   carepath_owner  owns the `carepath` database and its schema; migrations run as it
#   carepath_app    the worker and the API: migration 0013 grants it append and read
#
# The passwords come from files (DB_OWNER_PASSWORD_FILE, DB_APP_PASSWORD_FILE), the
# ones `carepath deploy init` wrote. Safe to run again: existing roles get the
# passwords of the files, an existing database is kept.
set -eu

owner_password=$(cat "$DB_OWNER_PASSWORD_FILE")
app_password=$(cat "$DB_APP_PASSWORD_FILE")

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set owner_password="$owner_password" --set app_password="$app_password" <<'SQL'
SELECT format('CREATE ROLE %I', name)
  FROM unnest(ARRAY['carepath_owner', 'carepath_app']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
SELECT format('ALTER ROLE carepath_owner WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'owner_password') \gexec
SELECT format('ALTER ROLE carepath_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'app_password') \gexec
SELECT 'CREATE DATABASE carepath OWNER carepath_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'carepath') \gexec
SQL
echo "carepath-db: roles carepath_owner and carepath_app and database carepath are ready"
