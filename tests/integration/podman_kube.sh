#!/bin/sh
# podman_kube.sh BUILD_DIR [CACHE_DIR]: agora's image and deploy/k8s/ run for
# real. The image is built from BUILD_DIR's binaries by
# deploy/container/build-image.sh (its Debian root cached in CACHE_DIR, default
# BUILD_DIR/container); the smoke job's env server, learner and two actors are
# started from the manifests by `podman kube play` (tests/k8s/podman-kube.mjs
# says what it changes for podman) on a podman network of the test's own, where
# pods reach each other by name. Checked:
#
# * the learner trains the whole job (learner.max_updates of examples/smoke.ini)
#   with trajectories from both actor pods, and agora-pod marks it finished;
#   restarted then, the learner's container idles and trains nothing more;
# * a learner sent SIGTERM mid-run (as Kubernetes does before it restarts a
#   container or deletes a pod) checkpoints into its volume, is restarted in
#   its pod by the restart policy, resumes from the version it saved and
#   trains on with the actors that kept running;
# * with `agora probe` in the image: the manifests' liveness probes as podman
#   runs them (podman healthcheck run) pass on the live pods, a probe across the
#   network reaches the env server by name, and a probe of the wrong service
#   or of a port nobody serves fails.
#
# The image is tagged localhost/agora:VERSION, the name the manifests use, so
# it replaces an image of that name built before. Installs what is missing
# (podman_deps.sh).
# Prints how long each stage took. Exit 77 (skip): this machine cannot run a
# podman container (not root, podman not installable, or its runtime fails).
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: podman_kube.sh BUILD_DIR [CACHE_DIR]}" && pwd)
cache=${2:-$build/container}
say() { echo "podman_kube: $(date -u +%H:%M:%S) $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
fail() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (rootful podman, debootstrap)"
t_start=$(date +%s)
t_last=$t_start
times=""
stage_done() {
    now=$(date +%s)
    times="$times $1=$((now - t_last))s"
    t_last=$now
}

# 1. What the test needs.
rc=0
sh "$src/tests/integration/podman_deps.sh" || rc=$?
[ "$rc" -eq 77 ] && skip "podman is not installed and cannot be"
[ "$rc" -eq 0 ] || fail "cannot install what the test needs"
# the runtime and ulimits that work where podman's defaults do not (deploy/README.md)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$src/deploy/container/containers.conf}"
work=$(mktemp -d)
net="agora-kube-$$"
log="$work/podman.log"
pods="agora-env-pod-0 agora-learner-pod-0 agora-actor-pod-0 agora-actor-pod-1"
volumes="state-agora-learner-0 agora-run agora-cluster"
# What a run leaves: also what an earlier run killed before its teardown left.
remove_all() {
    # shellcheck disable=SC2086
    podman pod rm -f -t 0 $pods >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    podman volume rm -f $volumes >/dev/null 2>&1 || true
    for n in $(podman network ls --format '{{.Name}}' | grep '^agora-kube-'); do
        podman network rm -f "$n" >/dev/null 2>&1 || true
    done
}
teardown() {
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        for p in $pods; do
            for c in $(podman ps -a --filter "pod=$p" --format '{{.Names}}' 2>/dev/null | grep -v infra); do
                echo "---- podman logs $c (last 30 lines)" >&2
                podman logs "$c" 2>&1 | tail -n 30 >&2
                pid=$(podman inspect "$c" --format '{{.State.Pid}}' 2>/dev/null || echo 0)
                if [ "${pid:-0}" -gt 0 ]; then
                    echo "---- TCP sockets of $c" >&2
                    nsenter -t "$pid" -n ss -tnoa >&2 2>/dev/null || true
                fi
            done
        done
        [ -f "$log" ] && { echo "---- podman" >&2; tail -n 30 "$log" >&2; }
    fi
    remove_all
    podman image rm -f localhost/agora-podman-check >/dev/null 2>&1 || true
    rm -rf "$work"
    stage_done teardown
    say "stage times:$times (total $(($(date +%s) - t_start))s)"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 1' INT TERM

# Can this machine run a container at all? A static binary is image enough.
mkdir -p "$work/check"
cp "$(command -v catatonit)" "$work/check/catatonit"
tar -C "$work/check" -cf "$work/check.tar" catatonit
podman import "$work/check.tar" localhost/agora-podman-check >>"$log" 2>&1 ||
    skip "podman cannot import an image: $(tail -n 1 "$log")"
podman run --rm --network none localhost/agora-podman-check /catatonit --version >>"$log" 2>&1 ||
    skip "podman cannot run a container here: $(tail -n 1 "$log")"
stage_done install

# 2. The image, and the manifests as podman runs them.
sh "$src/deploy/container/build-image.sh" --cache "$cache" --build "$build" >"$work/image" ||
    fail "deploy/container/build-image.sh failed"
image=$(tail -n 1 "$work/image")
stage_done image
node "$src/tests/k8s/podman-kube.mjs" "$work/kube" >&2
if podman run --rm --network none "$image" agora probe 2>&1 | grep -q "unknown command 'probe'"; then
    probe=no
    say "this agora has no 'agora probe': readiness is read from the logs, probes are not run"
else
    probe=yes
fi

# bounded waits: wait_for SECONDS WHAT COMMAND...
wait_for() {
    limit=$(($(date +%s) + $1))
    what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$limit" ] || fail "no $what after the time allowed"
        sleep 0.2
    done
}
logs_say() { podman logs "$1" 2>&1 | grep -q "$2"; }
in_pod() { c=$1; shift; podman exec "$c" "$@"; }
ready() { # ready CONTAINER SERVICE PORT LOG_LINE
    if [ "$probe" = yes ]; then
        wait_for 60 "answer from $2 in $1" podman exec "$1" agora probe "$2" "tcp://127.0.0.1:$3" --timeout-ms 1000
    else
        wait_for 60 "'$4' in $1's log" logs_say "$1" "$4"
    fi
}
play() {
    podman kube play --network "$net" "$work/kube/$1.yaml" >>"$log" 2>&1 ||
        fail "podman kube play $1.yaml failed: $(tail -n 3 "$log")"
}
figure() { node "$src/tests/k8s/learner-state.mjs" "$vol" | awk -v k="$1" '$1 == k { print $2 }'; }
actor_sum() { node "$src/tests/k8s/learner-state.mjs" "$vol" | awk '$1 == "actor" { s += $3 } END { print s + 0 }'; }
finished() { [ -f "$vol/finished" ]; }
# agora-learner, the child of agora-pod (its container's first process)
learner_pid() { pgrep -P "$(podman inspect --format '{{.State.Pid}}' agora-learner-pod-0-learner)" -x agora-learner; }
has_ppo_or_finished() { finished || grep -q '"phase":"ppo"' "$vol/metrics.jsonl"; }
restarts() { podman inspect "$1" --format '{{.RestartCount}}'; }
restarted() { [ "$(restarts "$1")" -gt "$2" ]; }

# 3. The job: env server, then the learner (its warm start asks the env
# server for demos: in Kubernetes its init container waits for it), then the
# actors.
remove_all
podman network create "$net" >>"$log" 2>&1 || fail "podman network create failed"
play agora-env
ready agora-env-pod-0-env env 5570 "serving on"
play agora-learner
vol=$(podman volume inspect state-agora-learner-0 --format '{{.Mountpoint}}')
ready agora-learner-pod-0-learner control 5582 "control on"
stage_done start
max_updates=$(sed -n 's/^max_updates *= *\([0-9]*\).*/\1/p' "$src/examples/smoke.ini")
[ -n "$max_updates" ] || fail "no learner.max_updates in examples/smoke.ini"

# 4. The learner is sent SIGTERM mid-run and its container restarts. The smoke
# job trains in about a second once both actors deliver, so at its first PPO
# update the learner is paused (SIGSTOP straight to its process: podman takes
# longer to start), then the actors, then the learner goes on: it can train
# only what it has queued, and is surely interrupted before the job's end.
wait_for 60 "agora-learner process in its container" learner_pid
lpid=$(learner_pid)
play agora-actor
limit=$(($(date +%s) + 120))
until has_ppo_or_finished; do
    [ "$(date +%s)" -lt "$limit" ] || fail "no PPO update in $vol/metrics.jsonl after the time allowed"
    sleep 0.05
done
kill -STOP "$lpid"
actor_pids=$(podman inspect --format '{{.State.Pid}}' agora-actor-pod-0-actor agora-actor-pod-1-actor)
# shellcheck disable=SC2086
kill -STOP $actor_pids
kill -CONT "$lpid"
finished && fail "the learner stopped (learner.max_updates or max_seconds) before it could be interrupted"
sleep 1
finished && fail "the learner finished before it could be interrupted"
trained_before=$(actor_sum)
podman kill --signal TERM agora-learner-pod-0-learner >>"$log" 2>&1
wait_for 60 "restart of the learner's container" restarted agora-learner-pod-0-learner 0
wait_for 60 "resume in the learner's log" logs_say agora-learner-pod-0-learner "resumed from /var/lib/agora"
ready agora-learner-pod-0-learner control 5582 "resumed from"
learner_log=$(podman logs agora-learner-pod-0-learner 2>&1)
saved=$(echo "$learner_log" | sed -n '/signal 15/,$p' | sed -n 's/.*learner: checkpoint: version \([0-9]*\),.*/\1/p' | head -n 1)
resumed=$(echo "$learner_log" | sed -n 's/.*resumed from \/var\/lib\/agora: version \([0-9]*\), \([0-9]*\) updates.*/\1 \2/p' | tail -n 1)
stopped_at=${resumed#* }
if [ -z "$saved" ] || [ "$saved" != "${resumed% *}" ]; then
    fail "the learner checkpointed version '${saved}' on SIGTERM but resumed version '${resumed% *}'"
fi
if [ -z "$stopped_at" ] || [ "$stopped_at" -lt 1 ] || [ "$stopped_at" -ge "$max_updates" ]; then
    fail "the learner resumed at $stopped_at updates (want 1..$((max_updates - 1)))"
fi
say "learner interrupted after $stopped_at of $max_updates updates (version $saved, $trained_before trajectories trained) and resumed"
if [ "$probe" = yes ]; then
    podman healthcheck run agora-learner-pod-0-learner >&2 ||
        fail "the learner's liveness probe fails on the running learner"
fi
# shellcheck disable=SC2086
kill -CONT $actor_pids
wait_for 180 "end of the job (AGORA_OUT/finished)" finished
stage_done train

# 5. What the volume and the logs say.
figures=$(node "$src/tests/k8s/learner-state.mjs" "$vol")
echo "$figures" | sed 's/^/podman_kube: learner: /' >&2
[ "$(figure last_update)" = "$max_updates" ] ||
    fail "the last PPO record is update $(figure last_update), not $max_updates"
[ "$(figure state_updates)" = "$max_updates" ] ||
    fail "state.json holds $(figure state_updates) updates, not $max_updates"
for a in 0 1; do
    n=$(echo "$figures" | awk -v p="agora-actor-pod-$a-" '$1 == "actor" && index($2, p) == 1 { print $3 }')
    [ "${n:-0}" -gt 0 ] || fail "the learner trained no trajectory of actor pod agora-actor-pod-$a"
done
[ "$(actor_sum)" -gt "$trained_before" ] ||
    fail "no trajectory trained after the resume ($(actor_sum) in all, $trained_before before)"
logs_say agora-learner-pod-0-learner "resuming the run saved in /var/lib/agora" ||
    fail "agora-pod did not resume the learner"
logs_say agora-learner-pod-0-learner "the learner finished the run" ||
    fail "agora-pod did not report the end of the job"
[ "$(podman inspect agora-learner-pod-0-learner --format '{{.State.Running}}')" = true ] ||
    fail "the finished learner's pod is not idling"
# A finished job stays finished when its learner's container restarts.
before=$(restarts agora-learner-pod-0-learner)
podman kill --signal TERM agora-learner-pod-0-learner >>"$log" 2>&1
wait_for 60 "restart of the finished learner's container" restarted agora-learner-pod-0-learner "$before"
wait_for 30 "the finished run's notice" logs_say agora-learner-pod-0-learner "remove /var/lib/agora/finished to train on"
sleep 1
[ "$(figure ppo_updates)" = "$max_updates" ] || fail "the finished job trained again after a restart"

if [ "$probe" = yes ]; then
    podman healthcheck run agora-env-pod-0-env >&2 || fail "the env server's liveness probe fails"
    podman healthcheck run agora-learner-pod-0-learner >&2 ||
        fail "the finished learner's liveness probe fails (agora-pod probe)"
    in_pod agora-actor-pod-0-actor agora probe env tcp://agora-env-pod-0:5570 --timeout-ms 2000 >&2 ||
        fail "agora probe env across the network failed"
    in_pod agora-actor-pod-0-actor agora probe env tcp://agora-learner-pod-0:5582 --timeout-ms 2000 >&2 &&
        fail "agora probe env passed against the learner's control socket"
    in_pod agora-actor-pod-0-actor agora probe control tcp://agora-env-pod-0:5582 --timeout-ms 1000 >&2 &&
        fail "agora probe passed where nothing listens"
fi
stage_done checks
say "ok: $max_updates updates across a learner restart (stopped after $stopped_at), both actor pods trained, probes: $probe"
