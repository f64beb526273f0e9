#!/usr/bin/env bash
# A single-node Slurm on localhost for the workflow tests (Debian 12 packages). Needs root.
#   tests/slurm/local_slurm.sh start | stop | status
# Idempotent: `start` installs what is missing and starts only what is not running; `stop`
# stops what this script started (pid files under $SLURM_LAB).
set -euo pipefail
BASE=${SLURM_LAB:-/tmp/llmvs-slurm}
cmd=${1:-start}

stop() {
  for f in slurmd slurmctld; do
    [[ -f $BASE/run/$f.pid ]] && kill "$(cat "$BASE/run/$f.pid")" 2>/dev/null || true
  done
  [[ -f $BASE/run/munged.started ]] && pkill -x munged 2>/dev/null || true
  rm -f "$BASE/run/munged.started"
}

case $cmd in
  stop) stop; exit 0 ;;
  status) sinfo -h 2>/dev/null && exit 0 || exit 1 ;;
  start) ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi
mkdir -p "$BASE"/{state,spool,log,run} /etc/slurm /run/munge
chown munge:munge /run/munge && chmod 755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  mungekey -c -f -k /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
fi
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged && touch "$BASE/run/munged.started"
fi
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 * 85 / 100 ))
# The config must be at /etc/slurm/slurm.conf: the slurm-jobstep executor strips SLURM_CONF
# from the environment of its inner `srun`.
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=llmvs-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd.%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# one fake GPU (no device behind it) so that GPU-requesting jobs are schedulable
printf 'AutoDetect=off\nNodeName=localhost Name=gpu File=/dev/null\n' > /etc/slurm/gres.conf
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd -N localhost
for _ in $(seq 30); do sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break; sleep 1; done
sinfo
