#!/bin/bash
# agora on a real Slurm: a private cluster of four virtual nodes on this
# machine (tests/support/slurm_cluster.sh) runs deploy/slurm/agora.sbatch, a
# heterogeneous job (learner on one node, an env server on another, two
# actors on a third), on a variant of examples/smoke.ini that trains for a
# fixed time and restarts nothing. While it trains agora-join.sbatch adds an
# env server and two actors, as jobs of their own; then the job is requeued
# (`scontrol requeue`, as a preemption would) and must resume from its
# checkpoint, the joined jobs carrying on.
# Checked: the jobs COMPLETED with exit code 0, the job started twice, the
# learner warmed up once and its updates run on without a gap across the
# requeue, the actors map of metrics.jsonl and state.json counts trajectories
# trained from every actor (the job's two and the two joined), summary.json
# and the learner's files exist, the reward server beside the learner got
# the actors' labels and resumed too, every actor (joined ones included)
# was trained from after the requeue, the joined actors played on the joined
# env server as well, and every env server deregistered. Then a
# second job whose actor is killed must fail as a whole: the actors' step
# ends (--kill-on-bad-exit), the learner checkpoints, the job is FAILED.
#
# usage: slurm.sh   (AGORA_BUILD_DIR and AGORA_SOURCE_DIR set by meson)
# Needs root (it installs slurmctld, slurmd, slurm-client and munge when
# missing and starts their daemons); otherwise it skips (exit 77).

set -u
build=${AGORA_BUILD_DIR:?}
source=${AGORA_SOURCE_DIR:?}
slurm_scripts=$source/deploy/slurm

if [ "$(id -u)" -ne 0 ]; then
    echo "slurm: skipped: starting slurmctld, slurmd and munged needs root" >&2
    exit 77
fi

. "$source/tests/support/slurm_cluster.sh"

die() {
    echo "slurm: $*" >&2
    exit 1
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/agora-slurm.XXXXXX") || die "no scratch directory"
# munged (the munge user) reaches its socket below here
chmod 0755 "$scratch"
cleanup() {
    status=$?
    if [ $status -ne 0 ] && [ -d "$scratch/run" ]; then
        for f in "$scratch"/*.out "$scratch"/run/logs/*.log "$slurm_dir"/log/slurmctld.log; do
            [ -f "$f" ] && { echo "==== $f" >&2; tail -n 30 "$f" >&2; }
        done
    fi
    slurm_cluster_stop
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$(date +%s)
slurm_cluster_install || die "cannot install the Slurm packages"
slurm_cluster_start "$scratch/cluster" 4 || die "cannot start the Slurm cluster"
t_cluster=$(date +%s)

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, or fails the test.
wait_for() {
    local limit=$1 what=$2
    shift 2
    slurm_wait "$limit" "$@" || die "$what: not within $limit s"
}

job_field() { # JOB FIELD: a field of the job's first component
    scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

ppo_updates() {
    grep -c '"phase":"ppo"' "$run/metrics.jsonl" 2>/dev/null
}

more_updates_than() {
    [ "$(ppo_updates)" -gt "$1" ]
}

job_state_is() { # JOB STATE
    [ "$(job_field "$1" JobState)" = "$2" ]
}

job_done() {
    case $(job_field "$1" JobState) in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;;
    *) return 1 ;;
    esac
}

# task_pid BINARY RUNINI ID: the pid of the agora process BINARY of
# the run whose run.ini is RUNINI, with --actor.id ID.
task_pid() {
    local c pid
    for c in /proc/[0-9]*/cmdline; do
        pid=${c#/proc/}
        pid=${pid%/cmdline}
        case $(tr '\0' ' ' 2>/dev/null <"$c") in
        */"$1 --config $2 "*"--actor.id $3 "*) echo "$pid" ;;
        esac
    done
}

joined_trained() {
    local last
    last=$(grep '"phase":"ppo"' "$run/metrics.jsonl" | tail -n 1)
    case $last in *"\"actor-$join-0\":"[1-9]*) ;; *) return 1 ;; esac
    case $last in *"\"actor-$join-1\":"[1-9]*) ;; *) return 1 ;; esac
}

resumed() {
    grep -q 'learner: resumed from' "$run/logs/learner.log"
}

# The smoke job, trained for a fixed time so that there is time to requeue
# it and to join it; any crash fails it (no restarts that could hide one).
# With a reward server beside the learner, which the actors send labels to.
runfile=$scratch/slurm-smoke.ini
sed -e 's/^max_updates = .*/max_updates = 0/' -e 's/^max_seconds = .*/max_seconds = 30/' \
    -e 's/^max_restarts = .*/max_restarts = 0/' -e 's/^\[run\]$/&\nreward_server = true/' \
    -e 's/^\[actor\]$/&\nreward_labels = outcomes/' "$source/examples/smoke.ini" >"$runfile"
for key in 'max_seconds = 30' 'max_restarts = 0' 'reward_server = true' \
    'reward_labels = outcomes'; do
    grep -q "^$key\$" "$runfile" || die "examples/smoke.ini no longer has the keys this test sets"
done

run=$scratch/run
export AGORA_BIN=$build
# the learner's three ports, the env server's, the reward server's, the
# joined env server's
port=$(slurm_free_ports 6) || die "no free ports"
export AGORA_LEARNER_PORT=$port AGORA_ENV_PORT=$((port + 3)) AGORA_REWARD_PORT=$((port + 4))

job=$(sbatch --parsable --chdir="$scratch" -n1 : -n1 : -n2 \
    "$slurm_scripts/agora.sbatch" "$runfile" "$run") || die "sbatch agora.sbatch failed"
job=${job%%;*}
echo "slurm: job $job submitted" >&2
wait_for 60 "job $job trains" more_updates_than 2
t_trains=$(date +%s)

# an env server joins, then two actors that play on it too
join_env=$(AGORA_ENV_PORT=$((port + 5)) sbatch --parsable --chdir="$scratch" -n1 \
    "$slurm_scripts/agora-join.sbatch" "$run" env-servers) || die "sbatch agora-join.sbatch failed"
wait_for 60 "job $join_env's env server registers" test -s "$run/env.d/$join_env.0"
join=$(sbatch --parsable --chdir="$scratch" -n2 "$slurm_scripts/agora-join.sbatch" "$run") ||
    die "sbatch agora-join.sbatch failed"
echo "slurm: job $join_env joins an env server, job $join two actors" >&2
wait_for 60 "the joined actors' trajectories are trained" joined_trained
t_joined=$(date +%s)

# requeued as a preemption would: the joined jobs wait for it
scontrol requeue "$job" || die "scontrol requeue $job failed"
wait_for 120 "job $job resumes" resumed
# what the requeue's checkpoint saved (nothing else is checkpointed until the end)
saved=$(cat "$run/state.json")
before=$(ppo_updates)
echo "slurm: job $job requeued after $before updates" >&2
wait_for 60 "the resumed job $job trains" more_updates_than "$before"
t_resumed=$(date +%s)

wait_for 120 "job $job ends" job_done "$job"
wait_for 60 "job $join ends" job_done "$join"
wait_for 60 "job $join_env ends" job_done "$join_env"
t_done=$(date +%s)
for i in 0 1; do
    grep -q "actor: actor actor-$join-$i .* on tcp://[^ ]*:$((port + 5))[, ]" \
        "$run/logs/join-$join-actor-$i.log" ||
        die "joined actor $i does not play on the joined env server"
done

# every component of each job
for j in "$job" "$join_env" "$join"; do
    states=$(scontrol show job "$j" | grep -o -E '(JobState|ExitCode)=[^ ]*' | sort | uniq -c)
    echo "$states" | grep -q -v -E 'JobState=COMPLETED|ExitCode=0:0' && die "job $j: $states"
done
restarts=$(scontrol show job "$job" | grep -o -E 'Restarts=[0-9]+' | sort -u)
[ "$restarts" = Restarts=1 ] || die "job $job: $restarts, not one requeue"
[ -z "$(ls -A "$run/env.d")" ] || die "env servers left registrations: $(ls "$run/env.d")"
for f in run.ini endpoints reference.ckpt policy.ckpt state.json queue.bin summary.json \
    reward/reward-state.json reward/default.ckpt; do
    [ -s "$run/$f" ] || die "no $f in the run directory"
done
grep -q 'reward: resumed 1 of 1 models' "$run/logs/reward.log" ||
    die "the reward server did not resume after the requeue"

/usr/bin/python3 - "$run" "$job" "$join" "$before" "$saved" <<'EOF' || exit 1
import json, sys

run, job, join, before = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
saved = {k: int(v) for k, v in json.loads(sys.argv[5])["actors"].items()}


def check(ok, what):
    if not ok:
        sys.exit("slurm: " + what)


records = [json.loads(line) for line in open(run + "/metrics.jsonl")]
warm = [r for r in records if r["phase"] == "warmstart"]
ppo = [r for r in records if r["phase"] == "ppo"]
check(len(warm) == 1, "%d warm-start records: the requeued job warmed up again" % len(warm))
updates = [r["update"] for r in ppo]
check(updates == list(range(1, len(updates) + 1)),
      "PPO updates do not run on from 1 without a gap across the requeue")
actors = ppo[-1]["actors"]
want = ["actor-0", "actor-1", "actor-%d-0" % join, "actor-%d-1" % join]
for a in want:
    check(actors.get(a, 0) > 0, "nothing trained from %s (actors %r)" % (a, actors))
check(sorted(actors) == sorted(want), "unexpected actors %r" % actors)
for a in want:
    check(actors[a] > saved.get(a, 0), "nothing trained from %s after the requeue (%d then, %d now)"
          % (a, saved.get(a, 0), actors[a]))

state = json.load(open(run + "/state.json"))
check({k: int(v) for k, v in state["actors"].items()} == actors,
      "state.json's actors %r differ from the last metrics record" % state["actors"])

s = json.load(open(run + "/summary.json"))
check(s["status"] == "completed" and s["learner_exit"] == 0, "summary %r" % s)
check(s["job_id"] == job and s["restarts"] == 1, "summary job %r restarts %r"
      % (s["job_id"], s["restarts"]))
check(s["env_servers"] == 1 and s["actors"] == 2, "summary sizes %r %r"
      % (s["env_servers"], s["actors"]))
check(s["final_metrics"]["update"] == len(updates),
      "summary's final_metrics is not the last update")
nodes = s["nodes"]
check(len(set(nodes.values())) == 3, "the components shared nodes: %r" % nodes)
labels = int(json.load(open(run + "/reward/reward-state.json"))["models"]["default"]["labels"])
check(labels > 0, "the reward server got no labels")
print("slurm: %d labels at the reward server" % labels)
print("slurm: %d updates (requeued after about %s), trajectories trained per actor %s"
      % (len(updates), before, actors))
EOF

# A crash must end the job: an actor killed (no restarts) takes the actors'
# step down (--kill-on-bad-exit), the learner checkpoints, the job FAILS.
run=$scratch/crash
job=$(sbatch --parsable --chdir="$scratch" -n1 : -n1 : -n2 \
    "$slurm_scripts/agora.sbatch" "$runfile" "$run") || die "sbatch agora.sbatch failed"
job=${job%%;*}
wait_for 60 "job $job trains" more_updates_than 2
victim=$(task_pid agora-actor "$run/run.ini" actor-1)
[ -n "$victim" ] || die "no agora-actor actor-1 of job $job"
kill -KILL "$victim"
echo "slurm: job $job: actor-1 (pid $victim) killed" >&2
wait_for 120 "job $job ends" job_done "$job"
t_crash=$(date +%s)
state=$(job_field "$job" JobState)
[ "$state" = FAILED ] || die "job $job with a crashed actor: $state, not FAILED"
grep -q '"status":"failed","error":"the actors failed' "$run/summary.json" ||
    die "summary.json of job $job: $(head -c 300 "$run/summary.json")"
grep -q 'signal 15: checkpointing and stopping' "$run/logs/learner.log" ||
    die "the learner of job $job was not stopped by a signal"
grep -q 'learner: checkpoint: version' "$run/logs/learner.log" ||
    die "the learner of job $job did not checkpoint"
[ -z "$(task_pid agora-actor "$run/run.ini" actor-0)" ] || die "actor-0 of job $job still runs"

echo "slurm: ok in $(($(date +%s) - t0)) s: cluster up in $((t_cluster - t0)) s, training after" \
    "$((t_trains - t_cluster)) s, joined in $((t_joined - t_trains)) s, trained again" \
    "$((t_resumed - t_joined)) s after the requeue," \
    "job ended $((t_done - t_resumed)) s later; the crash test took $((t_crash - t_done)) s" >&2
