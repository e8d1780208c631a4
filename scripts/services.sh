# Shell functions that make sure the services webcare's tests need are running. Sourced by scripts/test.
# Each one checks first and only starts or installs what is missing, so it is cheap on a ready machine.

PG_HOST=127.0.0.1
PG_PORT=5432
# The password only matters where the server asks for one (a server this script installed); where the server
# trusts local connections it is ignored.
PG_PASSWORD=webcare

log() { printf 'scripts: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

postgres_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
    else
        (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
    fi
}

postgres_test_url() {
    printf 'postgres://postgres:%s@%s:%s/webcare_test' "$PG_PASSWORD" "$PG_HOST" "$PG_PORT"
}

psql_admin() {
    PGPASSWORD="$PG_PASSWORD" psql -v ON_ERROR_STOP=1 -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres "$@"
}

ensure_postgres() {
    if ! postgres_ready; then
        if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
            log "PostgreSQL is not installed; installing it from Debian's packages"
            as_root apt-get update -qq
            DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
            local version
            version=$(ls /etc/postgresql | sort -V | tail -n 1)
            # Debian's cluster asks for a password over TCP; give the postgres role the one the tests use.
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
            as_root su postgres -c "psql -X -q -c \"ALTER ROLE postgres PASSWORD '$PG_PASSWORD'\""
        fi
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 1 60); do
            postgres_ready && break
            sleep 0.5
        done
        postgres_ready || { log "PostgreSQL did not come up on $PG_HOST:$PG_PORT"; return 1; }
    fi
    if ! command -v psql >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql-client >/dev/null
    fi
    if [ -z "$(psql_admin -Atc "SELECT 1 FROM pg_database WHERE datname = 'webcare_test'")" ]; then
        log "creating the webcare_test database"
        psql_admin -c "CREATE DATABASE webcare_test"
    fi
    # Databases left behind by test runs that were killed before they could drop them.
    local stale
    stale=$(psql_admin -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'webcare\_test\_%'")
    for db in $stale; do
        psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
    done
}

# The console's end-to-end tests drive Debian's headless Chromium through chromedriver.
ensure_chromium() {
    if command -v chromedriver >/dev/null 2>&1 \
        && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
        return 0
    fi
    log "Chromium or chromedriver is missing; installing them from Debian's packages"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium chromium-driver >/dev/null
}
