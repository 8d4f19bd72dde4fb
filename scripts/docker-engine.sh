#!/usr/bin/env bash
# Bring up a private Docker engine for autoray's docker-marked tests, and build the sandbox image.
#
#   scripts/docker-engine.sh up        reuse an engine that answers, else start a private dockerd;
#                                      build autoray-sandbox:latest if missing. STDOUT carries only
#                                      `export DOCKER_HOST=...` / `export AUTORAY_DOCKERD_PID=...`
#                                      lines, meant for `eval "$(scripts/docker-engine.sh up)"`.
#   scripts/docker-engine.sh down PID  stop the dockerd with that pid (SIGTERM, wait, SIGKILL).
#   scripts/docker-engine.sh image     (re)build autoray-sandbox:latest on the engine that answers.
#
# Every progress message goes to STDERR. The private engine keeps its data root across runs
# (default /var/lib/autoray-docker) so the base image is built once per machine.
set -euo pipefail

RUN_DIR=${AUTORAY_DOCKER_RUN_DIR:-/run/autoray-docker}
DATA_ROOT=${AUTORAY_DOCKER_DATA_ROOT:-/var/lib/autoray-docker}
IMAGE=autoray-sandbox:latest
PRIVATE_HOST="unix://$RUN_DIR/docker.sock"
DEFAULT_HOST="unix:///var/run/docker.sock"
UP_TIMEOUT_S=60
DOWN_TIMEOUT_S=30

log() { echo "docker-engine: $*" >&2; }
die() { log "error: $*"; exit 1; }

# True when a Docker engine answers /_ping at the given DOCKER_HOST-style address.
engine_answers() {
    local host=$1
    if command -v docker >/dev/null 2>&1; then
        timeout 10 docker -H "$host" version >/dev/null 2>&1
        return
    fi
    case "$host" in
        unix://*) [ -S "${host#unix://}" ] &&
            curl -fsS --max-time 5 --unix-socket "${host#unix://}" http://localhost/_ping \
                >/dev/null 2>&1 ;;
        tcp://*) curl -fsS --max-time 5 "http://${host#tcp://}/_ping" >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

# Print the first address where an engine answers: $DOCKER_HOST, the default socket, ours.
find_engine() {
    local host
    for host in "${DOCKER_HOST:-}" "$DEFAULT_HOST" "$PRIVATE_HOST"; do
        if [ -n "$host" ] && engine_answers "$host"; then
            echo "$host"
            return 0
        fi
    done
    return 1
}

# Install, with apt-get, the packages providing any missing command; args are command:package.
install_tools() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]} (or install them yourself)"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 ||
        die "apt-get update failed (see above)"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed (see above)"
}

# Start dockerd on the private socket; print its pid once it answers.
start_dockerd() {
    local log_file="$RUN_DIR/dockerd.log" pid waited=0
    mkdir -p "$RUN_DIR" "$DATA_ROOT"
    log "starting dockerd on $PRIVATE_HOST (data root $DATA_ROOT, log $log_file)"
    setsid dockerd \
        --host "$PRIVATE_HOST" \
        --data-root "$DATA_ROOT" \
        --exec-root "$RUN_DIR/exec" \
        --pidfile "$RUN_DIR/dockerd.pid" \
        --iptables=false --ip6tables=false --bridge=none --ip-masq=false --ip-forward=false \
        </dev/null >"$log_file" 2>&1 &
    pid=$!
    until engine_answers "$PRIVATE_HOST"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log_file" >&2 || true
            die "dockerd exited during start-up; its log is $log_file (last lines above)"
        fi
        if [ "$waited" -ge $((UP_TIMEOUT_S * 2)) ]; then
            tail -n 20 "$log_file" >&2 || true
            kill -TERM "$pid" 2>/dev/null || true
            die "dockerd did not answer within ${UP_TIMEOUT_S}s; its log is $log_file"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    [ -s "$RUN_DIR/dockerd.pid" ] && pid=$(cat "$RUN_DIR/dockerd.pid")
    log "dockerd answers (pid $pid)"
    echo "$pid"
}

# Print "<suite> <mirror>" of the system's main Debian-style apt source (deb822 or one-line).
apt_suite_and_mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        awk '
            function flush() {
                if (is_deb && uri != "" && suite != "") { print suite, uri; found = 1; exit }
                is_deb = 0; uri = ""; suite = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            /^[[:space:]]*#/ { next }
            tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" {
                for (i = 2; i <= NF; i++)
                    if (suite == "" && $i !~ /-(updates|security|backports)$/ && $i !~ /\//)
                        suite = $i
            }
            END { if (!found) flush() }
        ' "$file" | head -n 1 | grep . && return 0
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$file" ] || continue
        awk '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) !~ /-(updates|security|backports)$/) { print $(i + 1), $i; exit }
            }
        ' "$file" | head -n 1 | grep . && return 0
    done
    return 1
}

# Build the sandbox base image (minimal Debian with python3) on the engine at $1.
build_image() {
    local host=$1 source suite mirror rootfs
    source=$(apt_suite_and_mirror) ||
        die "no Debian apt source found in /etc/apt/sources.list(.d); cannot debootstrap the image"
    read -r suite mirror <<<"$source"
    install_tools debootstrap:debootstrap
    rootfs=$(mktemp -d /var/tmp/autoray-rootfs.XXXXXX)
    # shellcheck disable=SC2064  # expand now: the variable is local
    trap "rm -rf '$rootfs'" EXIT
    log "building $IMAGE: debootstrap $suite from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3 "$suite" "$rootfs" "$mirror" >&2 ||
        die "debootstrap $suite $mirror failed (see above)"
    tar -C "$rootfs" -c . |
        docker -H "$host" import --change 'CMD ["sleep","infinity"]' - "$IMAGE" >&2 ||
        die "docker import of $IMAGE failed (see above)"
    rm -rf "$rootfs"
    trap - EXIT
    log "built $IMAGE"
}

ensure_image() {
    local host=$1
    install_tools docker:docker.io
    if docker -H "$host" image inspect "$IMAGE" >/dev/null 2>&1; then
        log "$IMAGE is present"
    else
        build_image "$host"
    fi
}

cmd_up() {
    local host pid=""
    if host=$(find_engine); then
        log "an engine already answers at $host; reusing it"
    else
        install_tools dockerd:docker.io docker:docker.io
        pid=$(start_dockerd)
        host=$PRIVATE_HOST
    fi
    ensure_image "$host"
    echo "export DOCKER_HOST=$host"
    # Empty when the engine was already running: `down` must never stop an engine we did not start.
    echo "export AUTORAY_DOCKERD_PID=$pid"
}

cmd_down() {
    local pid=${1:-} waited=0
    [[ "$pid" =~ ^[0-9]+$ ]] || die "down needs the dockerd pid printed by 'up', got '${pid}'"
    if ! kill -0 "$pid" 2>/dev/null; then
        log "no process $pid; nothing to stop"
        return 0
    fi
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "dockerd" ] ||
        die "process $pid is not dockerd; refusing to stop it"
    log "stopping dockerd $pid"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$waited" -ge $((DOWN_TIMEOUT_S * 2)) ]; then
            log "dockerd $pid ignored SIGTERM for ${DOWN_TIMEOUT_S}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    log "dockerd $pid stopped"
}

cmd_image() {
    local host
    host=$(find_engine) ||
        die "no Docker engine answers at \$DOCKER_HOST, $DEFAULT_HOST or $PRIVATE_HOST; run '$0 up'"
    build_image "$host"
}

case "${1:-}" in
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    image) cmd_image ;;
    *) echo "usage: $0 up | down PID | image" >&2; exit 2 ;;
esac
