#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for testing `crossomics sweep --slurm`.
#
# Installs Debian's slurm-wlm and munge packages when they are missing, writes a minimal
# /etc/slurm/slurm.conf (one node: this host, all its CPUs, partition `debug`; no
# cgroups, no accounting), creates a munge key if there is none, starts munged,
# slurmctld and slurmd directly (no systemd needed: works in containers) and waits until
# `sinfo` shows the node idle.
#
#   sudo scripts/setup-slurm.sh      # then: cargo test -p crossomics-runner --test slurm
#
# Idempotent: a cluster that already answers is left alone. Needs root and apt-get; when
# Slurm cannot be started it says why and exits non-zero. Logs: /var/log/slurm/.
# Not for a real cluster's machines: it refuses to replace a slurm.conf it did not write.
set -euo pipefail

MARKER="# written by crossomics scripts/setup-slurm.sh"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
WAIT_S="${CROSSOMICS_SLURM_WAIT_S:-60}"

die() { echo "setup-slurm: cannot start Slurm: $*" >&2; exit 1; }
say() { echo "setup-slurm: $*" >&2; }

host="$(hostname -s 2>/dev/null || hostname)"
[[ -n "$host" ]] || die "no host name"

# The node's state as sinfo reports it (empty when the controller does not answer).
node_state() {
    command -v sinfo >/dev/null 2>&1 || return 0
    timeout 10 sinfo -h -N -n "$host" -o '%T' 2>/dev/null | head -n1 || true
}

# 0 when the node can take jobs now
node_ready() {
    case "$(node_state)" in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

if node_ready; then
    say "Slurm is already running: node $host is $(node_state)"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages and starts daemons); try: sudo $0"

# ---- packages
missing=()
for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and there is no apt-get to install slurm-wlm and munge"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2 ||
        die "apt-get install slurm-wlm munge failed"
    for cmd in munged slurmctld slurmd sbatch sinfo; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing slurm-wlm and munge"
    done
fi

# ---- munge
id munge >/dev/null 2>&1 || die "the munge package did not create the munge user"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force >&2
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged ||
        die "munged does not start (see /var/log/munge/munged.log)"
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 ||
        die "munged runs but credentials do not round-trip (see /var/log/munge/munged.log)"
fi

# ---- slurm.conf
cpus="$(nproc)"
mem_mb="$(free -m | awk '/^Mem:/ { print $2 }')"
[[ "$mem_mb" =~ ^[0-9]+$ ]] || die "cannot read the memory size from free -m"
# a little below the total: slurmd drains a node that has less than RealMemory
mem_mb=$((mem_mb * 95 / 100))
conf="$MARKER
ClusterName=crossomics
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
"
changed=0
if [[ -e "$CONF" ]] && ! grep -qxF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; move it away to use the test cluster"
fi
if [[ ! -e "$CONF" ]] || [[ "$(cat "$CONF")" != "${conf%$'\n'}" ]]; then
    say "writing $CONF ($host: $cpus CPUs, ${mem_mb} MB)"
    install -d -m 0755 "$CONF_DIR"
    printf '%s' "$conf" >"$CONF"
    changed=1
fi
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# ---- daemons
running() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {
    local pidfile=$1 pid
    running "$pidfile" || return 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
}
if ((changed)); then
    # a new configuration: restart whatever runs with the old one, from a clean state
    stop /run/slurmd.pid
    stop /run/slurmctld.pid
fi
if ! running /run/slurmctld.pid; then
    say "starting slurmctld"
    if ((changed)); then slurmctld -c || die "slurmctld does not start (see /var/log/slurm/slurmctld.log)"
    else slurmctld || die "slurmctld does not start (see /var/log/slurm/slurmctld.log)"; fi
fi
for _ in $(seq 20); do
    timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.5
done
timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' ||
    die "slurmctld does not answer (see /var/log/slurm/slurmctld.log: $(tail -n 3 /var/log/slurm/slurmctld.log 2>/dev/null | tr '\n' ' '))"
if ! running /run/slurmd.pid; then
    say "starting slurmd"
    slurmd -N "$host" || die "slurmd does not start (see /var/log/slurm/slurmd.log)"
fi

# ---- wait for the node
resumed=0
for ((t = 0; t < WAIT_S * 2; t++)); do
    node_ready && break
    state="$(node_state)"
    if ((!resumed)) && [[ "$state" =~ down|drain|fail ]]; then
        say "node $host is $state: resuming it"
        scontrol update NodeName="$host" State=RESUME >&2 || true
        resumed=1
    fi
    sleep 0.5
done
if ! node_ready; then
    die "node $host is '$(node_state)' after ${WAIT_S}s (see /var/log/slurm/slurmd.log: $(tail -n 3 /var/log/slurm/slurmd.log 2>/dev/null | tr '\n' ' '))"
fi
say "Slurm is running: $(sinfo -h -o '%P %a %D %T %N' | head -n1)"
