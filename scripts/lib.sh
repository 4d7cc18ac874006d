# Shared steps of scripts/serve and scripts/test. Source it; it changes
# nothing by itself.

# Debian's package lists are fetched once per run, only if a package is missing.
apt_updated=""
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "Missing $*: install it (apt-get install $*) or run as root." >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Makes .venv and installs the pinned requirements files given, when they
# changed since the last install.
ensure_venv() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    local stamp=.venv/.installed
    local wanted
    wanted=$(cat "$@" | sha256sum | cut -d ' ' -f 1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            $(printf -- '-r %s ' "$@")
        echo "$wanted" >"$stamp"
    fi
}

redis_answers() {
    local url=${1:-redis://127.0.0.1:6379/0}
    .venv/bin/python - "$url" <<'PY' >/dev/null 2>&1
import sys
from redis import Redis
Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

# Starts a throwaway Redis on 127.0.0.1:6379 unless one answers there.
ensure_local_redis() {
    redis_answers && return 0
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p instance
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' \
        --appendonly no --dir "$PWD/instance" --logfile "$PWD/instance/redis.log"
    for _ in $(seq 50); do
        redis_answers && return 0
        sleep 0.1
    done
    echo "Redis did not start; see instance/redis.log" >&2
    exit 1
}
