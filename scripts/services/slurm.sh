#!/usr/bin/env bash
# A one-node Slurm cluster (slurmctld + slurmd + munged on this machine), for tests and trials.
#
#   scripts/services/slurm.sh start   # starts it (or finds it running); prints the settings
#   scripts/services/slurm.sh env     # prints the settings of the running cluster
#   scripts/services/slurm.sh stop    # stops the daemons (and munged, if start started it);
#                                     # queued and running jobs are dropped: wait for them first
#
# Settings printed (eval "$(scripts/services/slurm.sh start)"): SLURM_CONF, the configuration
# that sbatch, squeue, scontrol and scancel must read; /etc/slurm is left alone.
# The node is named after `hostname -s`, has this machine's CPUs and memory, and one partition,
# `grading`. Finished jobs stay in `squeue --states=all` for a day (MinJobAge): there is no
# accounting database, so that is where autograder/cluster/slurm.py reads their states and reasons.
# Needs root and the Debian packages slurm-wlm and munge. Slurm runs its jobs as root here;
# the grading sandbox drops to an unprivileged user inside each task.
set -euo pipefail

STATE="${AUTOGRADER_SERVICES:-/tmp/autograder-services}/slurm"
CONF="$STATE/slurm.conf"
NODE="$(hostname -s)"

print_settings() { echo "export SLURM_CONF=$CONF"; }

munge_running() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
daemon_running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
node_idle() {
    SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

write_config() {
    cpus="$(nproc)"
    memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p "$STATE/ctld" "$STATE/spool"
    cat > "$CONF" <<CONFIG
# written by scripts/services/slurm.sh: a one-node test cluster
ClusterName=autograder
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=86400
MaxArraySize=10001
MaxJobCount=100000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
NodeName=$NODE CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=grading Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONFIG
}

start() {
    command -v slurmctld >/dev/null || { echo "apt-get install slurm-wlm munge" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "the test cluster runs as root" >&2; exit 1; }
    if ! munge_running; then
        mkdir -p /run/munge /var/lib/munge /var/log/munge
        chown munge:munge /run/munge /var/lib/munge /var/log/munge
        [ -f /etc/munge/munge.key ] || { mungekey --create; chown munge:munge /etc/munge/munge.key; }
        runuser -u munge -- /usr/sbin/munged
        mkdir -p "$STATE"
        cp /run/munge/munged.pid "$STATE/munged.pid"  # ours to stop; a system munged is left alone
    fi
    if daemon_running slurmctld && daemon_running slurmd && node_idle; then
        print_settings; return
    fi
    stop_daemons
    write_config
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 100); do  # ready when the node accepts jobs (about a second)
        node_idle && { print_settings; return; }
        sleep 0.1
    done
    echo "Slurm did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
    exit 1
}

stop_daemons() {
    for daemon in slurmd slurmctld; do
        if daemon_running "$daemon"; then
            pid="$(cat "$STATE/$daemon.pid")"
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
}

stop() {
    stop_daemons
    if daemon_running munged; then
        kill "$(cat "$STATE/munged.pid")"
    fi
    rm -f "$STATE/munged.pid"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) daemon_running slurmctld || { echo "Slurm is not running: $0 start" >&2; exit 1; }
         print_settings ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
