#!/bin/bash
# agora-slurm.sh - what agora.sbatch and agora-join.sbatch share: finding the
# binaries, the run directory's files (run.ini, endpoints, env.d/), and the
# one command line of each kind of process. The batch scripts source it; each
# task runs it through srun:
#
#   agora-slurm.sh task learner|reward|env|actor RUNDIR
#
# The run directory lives on a filesystem every node shares. It holds
#   run.ini     the run file, copied in on the first start and read by every
#               process of the run, requeued and joined ones included
#   endpoints   where the job's learner (and reward server) listen, rewritten
#               at every start of the job (KEY=VALUE lines)
#   env.d/      one file per env server, JOB.TASK holding its endpoint; an
#               entry whose job is no longer running is ignored
# besides what the learner writes there (metrics.jsonl, policy.ckpt,
# state.json, ...), logs/ and summary.json.
#
# Ports (the environment may set them): the learner binds AGORA_LEARNER_PORT
# and the two above it (trajectories, weights, control; default 5580-5582),
# env server task i binds AGORA_ENV_PORT + i (default 5570 + i), the reward
# server AGORA_REWARD_PORT (default 5560). Processes of different jobs or
# components that may share a node need ports that do not overlap.
#
# The learner is the job's rendezvous: env servers, the reward server and
# actors are given only its control endpoint (--join) and find the rest
# through it (docs/protocol.md §12.4). The files in the run directory
# (endpoints, env.d/) are for the scripts' own bookkeeping and the logs.

set -u

: "${AGORA_LEARNER_PORT:=5580}"
: "${AGORA_ENV_PORT:=5570}"
: "${AGORA_REWARD_PORT:=5560}"
# how long env servers and the reward server may take to listen, in seconds
: "${AGORA_WAIT_S:=60}"
# how long a process may take to stop after SIGTERM (the learner checkpoints)
: "${AGORA_STOP_S:=120}"

ag_log() {
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) agora-slurm: $*" >&2
}

ag_die() {
    ag_log "$*"
    exit 1
}

# ag_ini FILE SECTION KEY DEFAULT: a value of the run file (the last one
# given), inline "; comments" and surrounding blanks removed.
ag_ini() {
    awk -v sec="$2" -v key="$3" -v def="$4" '
        /^[ \t]*[;#]/ { next }
        /^[ \t]*\[/ { s = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", s); next }
        s == sec && index($0, "=") {
            k = substr($0, 1, index($0, "=") - 1)
            gsub(/^[ \t]+|[ \t]+$/, "", k)
            if (k != key) next
            v = substr($0, index($0, "=") + 1)
            sub(/[ \t]+;.*$/, "", v)
            gsub(/^[ \t]+|[ \t]+$/, "", v)
            val = v; found = 1
        }
        END { print found ? val : def }' "$1"
}

# ag_json_str TEXT: TEXT as a JSON string.
ag_json_str() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
}

ag_true() {
    case $1 in true | yes | on | 1) return 0 ;; *) return 1 ;; esac
}

# ag_bin NAME: the path of an agora binary: in AGORA_BIN (an install's bin
# directory or a meson build tree), else on PATH.
ag_bin() {
    local sub
    case $1 in
    agora-env) sub=env_server ;;
    agora-learner) sub=learner ;;
    agora-actor | agora-eval) sub=actor ;;
    agora-reward) sub=reward_server ;;
    *) sub=. ;;
    esac
    if [ -n "${AGORA_BIN:-}" ]; then
        if [ -x "$AGORA_BIN/$1" ]; then
            echo "$AGORA_BIN/$1"
        elif [ -x "$AGORA_BIN/$sub/$1" ]; then
            echo "$AGORA_BIN/$sub/$1"
        else
            ag_die "no $1 in AGORA_BIN=$AGORA_BIN"
        fi
    else
        command -v "$1" || ag_die "$1 is not on PATH (set AGORA_BIN)"
    fi
}

# ag_node_addr NODE: the address Slurm reaches NODE at (its NodeAddr), which
# is the address the node's services are reached at.
ag_node_addr() {
    local addr
    addr=$(scontrol show node "$1" 2>/dev/null | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p' | head -n 1)
    echo "${addr:-$1}"
}

# ag_job: this job's id; for a component of a heterogeneous job, the job's.
ag_job() {
    echo "${SLURM_HET_JOB_ID:-$SLURM_JOB_ID}"
}

# ag_job_alive JOB: the job is pending, running, ending or being requeued
# (a requeued job is COMPLETING, then PENDING).
ag_job_alive() {
    case $(squeue -h -t all -j "$1" -o %T 2>/dev/null | head -n 1) in
    PENDING | CONFIGURING | RUNNING | COMPLETING | SUSPENDED | REQUEUED | REQUEUE_FED | \
        REQUEUE_HOLD | RESIZING | SIGNALING | STAGE_OUT) return 0 ;;
    *) return 1 ;;
    esac
}

# ag_endpoint RUNDIR KEY: a value of RUNDIR/endpoints.
ag_endpoint() {
    sed -n "s/^$2=//p" "$1/endpoints" | tail -n 1
}

# ag_write FILE: stdin into FILE, atomically (readers on other nodes never
# see half a file).
ag_write() {
    cat >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}

# ag_env_list RUNDIR: the endpoints of the run's live env servers, comma-separated.
ag_env_list() {
    local f job list="" alive=" " dead=" "
    for f in "$1"/env.d/*.*; do
        [ -f "$f" ] || continue
        job=${f##*/}
        job=${job%%.*}
        case $dead in *" $job "*) continue ;; esac
        case $alive in
        *" $job "*) ;;
        *)
            if ag_job_alive "$job"; then
                alive="$alive$job "
            else
                dead="$dead$job "
                continue
            fi
            ;;
        esac
        list="$list${list:+,}$(cat "$f")"
    done
    echo "$list"
}

# ag_listening HOST PORT: something accepts TCP connections there.
ag_listening() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# ag_supervise CMD...: runs CMD and restarts it when it fails, as the local
# launcher does: at most [run] max_restarts times, after [run]
# restart_delay_ms (doubling, at most 30 s); exit status 3 ("cannot do this
# job") is not restarted. After a SIGTERM or SIGINT nothing is restarted; the
# signal itself reaches CMD from Slurm, which signals every process of a step
# (passing it on as well would make it a second signal: "exit now").
ag_supervise() {
    local max delay restarts=0 rc child pid stopping=0
    max=$(ag_ini "$run/run.ini" run max_restarts 5)
    delay=$(ag_ini "$run/run.ini" run restart_delay_ms 500)
    trap 'stopping=1' TERM INT
    while :; do
        "$@" &
        child=$!
        # a trapped signal ends a wait early, without the child's pid
        pid=""
        until [ -n "${pid:-}" ]; do
            wait -n -p pid "$child"
            rc=$?
        done
        if [ $stopping -eq 1 ] || [ $rc -eq 0 ]; then
            return $rc
        fi
        if [ $rc -eq 3 ]; then
            ag_log "${1##*/} cannot do this job (exit 3): not restarted"
            return 3
        fi
        if [ $restarts -ge "$max" ]; then
            ag_log "${1##*/} exited with status $rc; given up after $restarts restarts"
            return $rc
        fi
        restarts=$((restarts + 1))
        ag_log "${1##*/} exited with status $rc; restart $restarts of $max in $delay ms"
        sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
        [ $stopping -eq 0 ] || return $rc
        delay=$((delay * 2 > 30000 ? 30000 : delay * 2))
    done
}

# ---- one command line per kind of process (run by `task` on its node) ----

ag_task_learner() {
    local addr args bin
    addr=$(ag_node_addr "$SLURMD_NODENAME")
    args=(--config "$run/run.ini" --learner.out "$run"
        --learner.trajectories "tcp://*:$AGORA_LEARNER_PORT"
        --learner.weights "tcp://*:$((AGORA_LEARNER_PORT + 1))"
        --learner.control "tcp://*:$((AGORA_LEARNER_PORT + 2))")
    # the learner hands out this address; its warm start takes demos from the
    # env servers that register (learner.env empty)
    args+=(--learner.advertise "$addr" --learner.env "")
    if [ -f "$run/state.json" ]; then
        ag_log "learner on $addr resumes the run saved in $run"
        args+=(--learner.resume "$run")
    else
        ag_log "learner on $addr starts the run in $run"
    fi
    bin=$(ag_bin agora-learner) || exit 1
    exec "$bin" "${args[@]}"
}

ag_task_reward() {
    local addr init args bin
    addr=$(ag_node_addr "$SLURMD_NODENAME")
    args=(--config "$run/run.ini" --reward.bind "tcp://*:$AGORA_REWARD_PORT"
        --reward.out "$run/reward")
    # reward.init names a file of the run (the learner's reference.ckpt)
    init=$(ag_ini "$run/run.ini" reward init "")
    case $init in "" | /*) ;; *) args+=(--reward.init "$run/$init") ;; esac
    if [ -f "$run/reward/reward-state.json" ]; then
        args+=(--reward.resume "$run/reward")
    fi
    args+=(--join "$(ag_endpoint "$run" learner_control)" --advertise "$addr")
    bin=$(ag_bin agora-reward) || exit 1
    exec "$bin" "${args[@]}"
}

ag_task_env() {
    local addr port job reg reward args rc bin
    addr=$(ag_node_addr "$SLURMD_NODENAME")
    port=$((AGORA_ENV_PORT + SLURM_PROCID))
    job=$(ag_job)
    reg=$run/env.d/$job.$SLURM_PROCID
    args=(--config "$run/run.ini" --env.bind "tcp://*:$port" --env.name "env-$job-$SLURM_PROCID")
    reward=$(ag_endpoint "$run" reward)
    [ -z "$reward" ] || args+=(--env.reward "$reward")
    args+=(--join "$(ag_endpoint "$run" learner_control)" --advertise "$addr")
    bin=$(ag_bin agora-env) || exit 1
    echo "tcp://$addr:$port" | ag_write "$reg"
    ag_log "env server $job.$SLURM_PROCID on tcp://$addr:$port"
    ag_supervise "$bin" "${args[@]}"
    rc=$?
    rm -f "$reg"
    exit $rc
}

ag_task_actor() {
    local job id seed args reward bin
    job=$(ag_job)
    # ids and seeds as the local launcher gives them (a joined actor's id
    # names its job); episode seeds derive from the seed and the id, so a
    # requeued job's actors take other seeds not to replay the same games
    id=actor-$SLURM_PROCID
    [ "$job" = "$(ag_endpoint "$run" job)" ] || id=actor-$job-$SLURM_PROCID
    seed=$(($(ag_ini "$run/run.ini" run seed 1) + SLURM_PROCID + 1000 * ${SLURM_RESTART_COUNT:-0}))
    args=(--config "$run/run.ini" --actor.id "$id" --actor.seed "$seed")
    args+=(--join "$(ag_endpoint "$run" learner_control)")
    reward=$(ag_endpoint "$run" reward)
    [ -z "$reward" ] || args+=(--actor.reward "$reward")
    ag_log "actor $id (seed $seed) on $SLURMD_NODENAME"
    bin=$(ag_bin agora-actor) || exit 1
    ag_supervise "$bin" "${args[@]}"
    exit $?
}

# ---- the batch scripts' side ----

# ag_lib: the path of this file (for srun).
ag_lib() {
    echo "${BASH_SOURCE[0]}"
}

# ag_step_alive PID: the srun of a step is still running.
ag_step_alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# ag_signal_step NAME: SIGTERM to the tasks of the job step named NAME (srun
# --job-name; the batch scripts name each step after its job and kind). A
# SIGTERM to srun itself would kill them instead.
ag_signal_step() {
    local ids
    ids=$(squeue -s -h -o '%i %j' | awk -v name="$1" '$2 == name { print $1 }')
    # shellcheck disable=SC2086 # one argument per step
    [ -z "$ids" ] || scancel --signal=TERM $ids 2>/dev/null
}

# ag_stop_steps NAME PID [NAME PID]...: SIGTERM to each step's tasks, then
# waits for their srun (PID) to end, at most AGORA_STOP_S seconds before the
# step is killed. An empty PID is a step that is not running.
ag_stop_steps() {
    local args=("$@") i deadline pid
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        ag_step_alive "${args[i + 1]}" && ag_signal_step "${args[i]}"
    done
    deadline=$(($(date +%s) + AGORA_STOP_S))
    for ((i = 1; i < ${#args[@]}; i += 2)); do
        pid=${args[i]}
        [ -n "$pid" ] || continue
        while ag_step_alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do
            sleep 0.5
        done
        if ag_step_alive "$pid"; then
            ag_log "step ${args[i - 1]} did not stop in $AGORA_STOP_S s: cancelling it"
            kill -TERM "$pid" 2>/dev/null # srun cancels the step
        fi
        wait "$pid" 2>/dev/null
    done
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    [ $# -eq 3 ] && [ "$1" = task ] || ag_die "usage: $0 task learner|reward|env|actor RUNDIR"
    run=$3
    case $2 in
    learner) ag_task_learner ;;
    reward) ag_task_reward ;;
    env) ag_task_env ;;
    actor) ag_task_actor ;;
    *) ag_die "unknown task '$2'" ;;
    esac
fi
