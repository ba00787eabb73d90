#!/bin/sh
# Runs once, when PostgreSQL initialises an empty volume: a second database and role for the gate.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE gate LOGIN PASSWORD '${GATE_DB_PASSWORD}';
CREATE DATABASE gate OWNER gate;
SQL
