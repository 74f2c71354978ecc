#!/usr/bin/env bash
# Set up everything ai-computer needs on a Debian/Ubuntu machine, then run something.
#
#   bash setup.sh run      set up, then run the quick-start example (a sandbox executing code)
#   bash setup.sh test     set up, then run the test suite (extra arguments go to pytest)
#   bash setup.sh setup    set up only
#
# --gvisor (with run or setup; test always does it) also installs Debian's gVisor (runsc) and
# registers it with the engine as the runtime "ai-computer-gvisor", for runtime="gvisor".
#
# Each step is skipped when it is already done: a reachable Docker engine is used as it is
# (DOCKER_HOST etc.); one is installed from the distribution's packages and started only when
# none answers. Installing needs root.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }

apt_install() {
    [ "$(id -u)" = 0 ] || die "need to install $* but not root: run as root or install it yourself"
    command -v apt-get >/dev/null || die "need $* and found no apt-get: install it with your package manager"
    if [ ! -f /tmp/.ai-computer-apt-updated ]; then
        apt-get update -qq && touch /tmp/.ai-computer-apt-updated
    fi
    say "installing $* (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_docker() {
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        say "Docker engine: answering"
        return
    fi
    command -v dockerd >/dev/null || apt_install docker.io
    if ! docker info >/dev/null 2>&1; then
        if [ -d /run/systemd/system ]; then
            say "starting Docker (systemctl)"
            systemctl start docker
        else
            [ "$(id -u)" = 0 ] || die "no Docker engine answers: start one (dockerd) or set DOCKER_HOST"
            # No default bridge: sandboxes have no network anyway (see DESIGN.md).
            start_dockerd
        fi
        for _ in $(seq 120); do
            docker info >/dev/null 2>&1 && break
            sleep 0.5
        done
        docker info >/dev/null 2>&1 || die "dockerd did not come up; see /var/log/dockerd.log"
    fi
    say "Docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
}

GVISOR_WRAPPER=/usr/local/lib/ai-computer/runsc-sandbox
OUR_DOCKERD_FLAGS="--bridge=none --iptables=false --ip-masq=false"

start_dockerd() {
    # No default bridge: sandboxes have no network anyway (see DESIGN.md). With gVisor
    # installed, it is registered on the command line (--add-runtime), so the engine's own
    # daemon.json, if any, still applies.
    local runtime=()
    if command -v runsc >/dev/null; then
        write_gvisor_wrapper
        runtime=(--add-runtime "ai-computer-gvisor=$GVISOR_WRAPPER")
    fi
    say "starting dockerd (log: /var/log/dockerd.log)"
    # shellcheck disable=SC2086
    setsid dockerd $OUR_DOCKERD_FLAGS "${runtime[@]}" >/var/log/dockerd.log 2>&1 </dev/null &
}

write_gvisor_wrapper() {
    # runsc with the flags the sandbox's kernel needs: no network of its own (this runsc
    # release refuses Docker's "none" network otherwise), unix sockets across its volumes.
    mkdir -p "$(dirname "$GVISOR_WRAPPER")"
    printf '#!/bin/sh\nexec /usr/bin/runsc --network=none --host-uds=all "$@"\n' >"$GVISOR_WRAPPER"
    chmod 755 "$GVISOR_WRAPPER"
}

gvisor_registered() {
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"ai-computer-gvisor"'
}

ensure_gvisor() {
    command -v runsc >/dev/null || apt_install runsc
    if gvisor_registered; then
        say "gVisor: registered with the engine (ai-computer-gvisor)"
        return
    fi
    # An engine this script started (its flags, no systemd) is restarted with our config file;
    # any other engine's configuration is its owner's: say what to add, change nothing.
    local pid cmdline=""
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    [ -n "$pid" ] && cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [ -n "$pid" ] && [ ! -d /run/systemd/system ] && [[ $cmdline == *"$OUR_DOCKERD_FLAGS"* ]]; then
        if [ -n "$(docker ps -q)" ]; then
            die "gVisor is not registered with the dockerd this script started, and restarting it
would stop its running containers: stop them (docker ps), then run this again"
        fi
        say "restarting the dockerd this script started, with gVisor registered"
        kill "$pid"
        for _ in $(seq 120); do [ -e "/proc/$pid" ] || break; sleep 0.5; done
        start_dockerd
        for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
        gvisor_registered || die "dockerd did not register gVisor; see /var/log/dockerd.log"
        say "gVisor: registered with the engine (ai-computer-gvisor)"
        return
    fi
    die "gVisor (runsc) is installed but your Docker engine does not know it. Add this to its
daemon.json (/etc/docker/daemon.json), then restart the engine (systemctl restart docker):
$(cat <<'JSON'
  "runtimes": {"ai-computer-gvisor": {"path": "/usr/bin/runsc",
                "runtimeArgs": ["--network=none", "--host-uds=all"]}}
JSON
)"
}

ensure_venv() {
    if [ ! -x .venv/bin/python ]; then
        command -v python3 >/dev/null || apt_install python3 python3-venv
        python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
        say "creating .venv"
        python3 -m venv .venv
    fi
    local stamp=.venv/.ai-computer-installed want
    # What an install copies into .venv (besides the editable code): redo it when these change.
    want=$(cat pyproject.toml ai_computer/data/kernelspec/ai-computer-sandbox/kernel.json \
        jupyter_ext/jupyter-config/jupyter_server_config.d/ai_computer.json \
        jupyter_ext/prebuilt/package.json | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing ai-computer and its test dependencies into .venv"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[test]'
        .venv/bin/ai-computer kernelspec install --sys-prefix >/dev/null
        echo "$want" >"$stamp"
    else
        say "ai-computer: installed in .venv"
    fi
}

ensure_browser() {
    # The JupyterLab end-to-end test drives Debian's chromium (Playwright's download is not used).
    if command -v chromium >/dev/null; then
        say "chromium: present"
    else
        apt_install chromium
    fi
}

ensure_lab_tools() {
    # The swarm lab the cluster tests make (tests/cluster/lab.py): network namespaces, extra
    # engines started with nsenter, Debian's registry.
    local missing=()
    command -v ip >/dev/null || missing+=(iproute2)
    command -v nsenter >/dev/null || missing+=(util-linux)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
    say "swarm lab tools: present"
}

ensure_image() {
    local tag
    tag=$(.venv/bin/ai-computer image tag)
    if docker image inspect "$tag" >/dev/null 2>&1; then
        say "sandbox image $tag: present"
        return
    fi
    # Without a registry the base comes from mmdebstrap; with one, python:3.11-slim is pulled.
    # When the pull here failed, the build does not try it again.
    local base=auto
    if ! command -v mmdebstrap >/dev/null && ! docker pull -q python:3.11-slim >/dev/null 2>&1; then
        apt_install mmdebstrap
        base=debian
    fi
    .venv/bin/ai-computer image build --base "$base"
}

command=${1:-run}
[ $# -gt 0 ] && shift
case "$command" in
    run|test|setup) ;;
    *) die "unknown command '$command' (use: run, test or setup)" ;;
esac
gvisor=no
if [ "$command" = test ]; then
    gvisor=yes  # the suites run under both runtimes: CI must have gVisor
else
    for argument in "$@"; do
        case "$argument" in
            --gvisor) gvisor=yes ;;
            *) die "unknown option '$argument' for $command (allowed: --gvisor)" ;;
        esac
    done
    set --
fi

if [ "$gvisor" = yes ] && ! command -v runsc >/dev/null; then apt_install runsc; fi
ensure_docker
if [ "$gvisor" = yes ]; then ensure_gvisor; fi
ensure_venv
ensure_image
if [ "$command" = test ]; then ensure_browser; ensure_lab_tools; fi

case "$command" in
    run) exec .venv/bin/python examples/quickstart.py ;;
    test) exec .venv/bin/python -m pytest "$@" ;;
    setup) say "ready: .venv/bin/python examples/quickstart.py" ;;
esac
