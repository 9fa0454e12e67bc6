# shellcheck shell=bash
# A private Slurm cluster on this one machine, for tests (sourced, not run):
# munged, slurmctld and one slurmd per virtual node (`slurmd -N nI`, each on
# its own port), all configured, logging and keeping state under one scratch
# directory, so nothing of the machine's own Slurm or munge (if any) is read
# or touched. Debian's slurm-wlm is built with multiple-slurmd support.
#
#   slurm_cluster_install          the Debian packages, when missing (root)
#   slurm_cluster_start DIR N      munged, slurmctld, n1..nN; exports SLURM_CONF
#   slurm_cluster_stop             every daemon it started, then DIR is removed
#
# Virtual nodes share one network namespace: two processes on different
# "nodes" cannot bind the same port.

slurm_packages="slurmctld slurmd slurm-client munge"

# slurm_cluster_install: apt-get install of what is missing; needs root.
slurm_cluster_install() {
    missing=""
    for p in $slurm_packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "slurm_cluster: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086 # one argument per package
    apt-get install -y -q --no-install-recommends $missing >&2 && return 0
    apt-get update -q >&2 || return 1
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >&2
}

# slurm_free_ports N: the first of N consecutive TCP ports nobody listens on
# right now (Slurm takes the virtual nodes' ports as one range).
slurm_free_ports() {
    /usr/bin/python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no %d consecutive free ports" % n)
EOF
}

slurm_dir=
slurm_pids=

# slurm_daemon_pid FILE: the pid a daemon wrote into FILE, or nothing.
slurm_daemon_pid() {
    [ -s "$1" ] && tr -dc '0-9' <"$1"
}

# slurm_wait SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds.
slurm_wait() {
    deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

slurm_nodes_idle() {
    [ "$(sinfo -h -N -t idle -o %N | sort -u | wc -l)" -eq "$slurm_n_nodes" ]
}

# slurm_cluster_start DIR N: a cluster of N virtual nodes n1..nN (2 CPUs
# each) in partition "agora", state and logs in DIR (which must not exist).
slurm_cluster_start() {
    slurm_dir=$1
    slurm_n_nodes=$2
    mkdir -p "$slurm_dir/munge" "$slurm_dir/ctld" "$slurm_dir/spool" "$slurm_dir/log" || return 1
    host=$(hostname -s)

    # munge: a private key and socket; munged runs as the munge user and
    # refuses a key anyone else may read.
    dd if=/dev/urandom of="$slurm_dir/munge/munge.key" bs=1024 count=1 2>/dev/null &&
        chown -R munge: "$slurm_dir/munge" && chmod 0755 "$slurm_dir/munge" &&
        chmod 0400 "$slurm_dir/munge/munge.key" || return 1
    m=$slurm_dir/munge
    munge_socket=$m/munge.socket
    AGORA_TEST_SLURM=$slurm_dir runuser -u munge -- /usr/sbin/munged --key-file="$m/munge.key" \
        --socket="$munge_socket" --pid-file="$m/munged.pid" --log-file="$m/munged.log" \
        --seed-file="$m/munged.seed" || { cat "$m/munged.log" >&2; return 1; }
    slurm_pids="$m/munged.pid"

    ports=$(slurm_free_ports $((slurm_n_nodes + 1))) || return 1
    ctld_port=$ports
    export SLURM_CONF=$slurm_dir/slurm.conf
    {
        echo "ClusterName=agoratest"
        echo "SlurmctldHost=$host(127.0.0.1)"
        echo "SlurmctldPort=$ctld_port"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        # a requeued job waits cred_expire seconds (default 120) before it starts again
        echo "AuthInfo=socket=$munge_socket,cred_expire=5"
        echo "StateSaveLocation=$slurm_dir/ctld"
        echo "SlurmdSpoolDir=$slurm_dir/spool/%n"
        echo "SlurmctldPidFile=$slurm_dir/slurmctld.pid"
        echo "SlurmdPidFile=$slurm_dir/slurmd-%n.pid"
        echo "SlurmctldLogFile=$slurm_dir/log/slurmctld.log"
        echo "SlurmdLogFile=$slurm_dir/log/slurmd-%n.log"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "MpiDefault=none"
        echo "SwitchType=switch/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobCompType=jobcomp/filetxt"
        echo "JobCompLoc=$slurm_dir/log/jobcomp.log"
        # heterogeneous jobs are scheduled only by backfill: run it every second
        echo "SchedulerType=sched/backfill"
        echo "SchedulerParameters=bf_interval=1"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core"
        echo "ReturnToService=2"
        echo "MailProg=/bin/true"
        echo "JobRequeue=1"
        echo "KillWait=15"
        echo "MinJobAge=3600"
        echo "SlurmdTimeout=60"
        echo "NodeName=n[1-$slurm_n_nodes] NodeHostName=$host NodeAddr=127.0.0.1" \
            "Port=[$((ports + 1))-$((ports + slurm_n_nodes))] CPUs=2 RealMemory=2000 State=UNKNOWN"
        echo "PartitionName=agora Nodes=n[1-$slurm_n_nodes] Default=YES MaxTime=INFINITE State=UP"
    } >"$SLURM_CONF"

    AGORA_TEST_SLURM=$slurm_dir /usr/sbin/slurmctld -f "$SLURM_CONF" -i || return 1
    slurm_pids="$slurm_pids $slurm_dir/slurmctld.pid"
    slurm_wait 30 scontrol ping || { cat "$slurm_dir/log/slurmctld.log" >&2; return 1; }
    i=1
    while [ $i -le "$slurm_n_nodes" ]; do
        AGORA_TEST_SLURM=$slurm_dir /usr/sbin/slurmd -f "$SLURM_CONF" -N "n$i" || return 1
        slurm_pids="$slurm_dir/slurmd-n$i.pid $slurm_pids"
        i=$((i + 1))
    done
    slurm_wait 60 slurm_nodes_idle || { sinfo -N >&2; tail -n 20 "$slurm_dir"/log/* >&2; return 1; }
}

# slurm_cluster_stop: cancels every job, stops the daemons (slurmds first,
# munged last) and whatever the jobs left behind, removes the scratch directory.
slurm_cluster_stop() {
    [ -n "$slurm_dir" ] || return 0
    scancel --quiet --partition=agora 2>/dev/null
    slurm_wait 30 slurm_queue_empty
    for f in $slurm_pids; do
        pid=$(slurm_daemon_pid "$f")
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for f in $slurm_pids; do
        pid=$(slurm_daemon_pid "$f")
        [ -n "$pid" ] && ! slurm_wait 10 slurm_gone "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    for pid in $(slurm_cluster_pids); do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$slurm_dir"
    slurm_dir=
}

slurm_gone() {
    ! kill -0 "$1" 2>/dev/null
}

slurm_queue_empty() {
    [ -z "$(squeue -h -o %i 2>/dev/null)" ]
}

# slurm_cluster_pids: this cluster's daemons and slurmstepds (their
# environment has AGORA_TEST_SLURM, set for them alone) and the jobs'
# processes (SLURM_JOB_ID, and this cluster's SLURM_CONF).
slurm_cluster_pids() {
    for e in /proc/[0-9]*/environ; do
        pid=${e#/proc/}
        pid=${pid%/environ}
        env=$(tr '\0' '\n' 2>/dev/null <"$e") || continue
        case $env in
        *"AGORA_TEST_SLURM=$slurm_dir"$'\n'*) echo "$pid" ;;
        *"SLURM_JOB_ID="*) case $env in *"SLURM_CONF=$SLURM_CONF"$'\n'*) echo "$pid" ;; esac ;;
        esac
    done
}
