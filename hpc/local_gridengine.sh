#!/usr/bin/env bash
# A one-machine Grid Engine cluster, from Debian's packages (gridengine 8.1.9), to try `qsub hpc/run_finetune.sh`
# for real without a cluster. The scheduler test (tests/test_qsub.py) starts it; you can too:
#
#   bash hpc/local_gridengine.sh start    # install if missing (needs root and Debian's package archive), start, configure
#   bash hpc/local_gridengine.sh status   # qstat -f
#   bash hpc/local_gridengine.sh stop
#   then: source /var/lib/gridengine/default/common/settings.sh   (puts SGE_ROOT / SGE_CELL in your shell)
#
# What Grid Engine needs on a single machine, and what this does about it:
# - the Debian packages configure the cell but do not start the daemons (no init system here): we start
#   sge_qmaster and sge_execd ourselves;
# - every daemon and client must agree on the host's name, but 127.0.0.1 resolves back to "localhost" while
#   hostname says something else: host_aliases makes "localhost" the one name for all of them;
# - the host must be an admin, submit and execution host, and a queue (all.q, one slot per core) must exist;
# - the default configuration refuses jobs of users with uid/gid < 1000 (min_uid / min_gid): root's tests need 0;
# - a job that exits 99 is requeued, but only starts again once the execution host has reported the end of the last
#   run (every load_report_time, 40 s by default): 5 s here, and the scheduler runs every 2 s, so tests wait less;
# - with `qsub -notify`, a job to be suspended (`qmod -sj`) gets SIGUSR1 first, the same warning as at its soft
#   walltime, and SIGSTOP `notify` later (60 s by default): 10 min here, so that a job on a loaded machine has time to
#   checkpoint and exit 99 before it would be stopped (the scheduler test warns a job that way, at a moment it chooses).
set -euo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
say() { echo "[gridengine] $*"; }

install() {
  command -v qsub >/dev/null && [ -x /usr/sbin/sge_qmaster ] && [ -x /usr/sbin/sge_execd ] && [ -f "$COMMON/bootstrap" ] && return
  [ "$(id -u)" = 0 ] || { say "Grid Engine is not installed and installing it needs root"; exit 3; }
  say "installing gridengine-master gridengine-exec gridengine-client from Debian's packages"
  for p in gridengine-common gridengine-master gridengine-client gridengine-exec; do
    printf '%s shared/gridenginemaster string localhost\n%s shared/gridenginecell string default\n%s shared/gridengineconfig boolean true\n' \
      "$p" "$p" "$p" | debconf-set-selections
  done
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    gridengine-master gridengine-exec gridengine-client >/dev/null
}

running() { pgrep -x "$1" >/dev/null 2>&1 || pgrep -f "/usr/lib/gridengine/$1" >/dev/null 2>&1; }

stop() {
  pkill -f /usr/lib/gridengine/sge_execd 2>/dev/null || true
  pkill -f /usr/lib/gridengine/sge_qmaster 2>/dev/null || true
  for _ in $(seq 30); do running sge_qmaster || running sge_execd || return 0; sleep 1; done
  say "daemons did not stop in 30 s"; return 1
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local n=$1 what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  say "timed out waiting for $what"; return 1
}

start() {
  install
  if ! getent hosts "$(hostname)" >/dev/null; then  # the daemons look their own name up: it must resolve
    [ -w /etc/hosts ] || { say "$(hostname) does not resolve and /etc/hosts is not writable"; exit 3; }
    echo "127.0.0.1 $(hostname)" >> /etc/hosts; say "added $(hostname) to /etc/hosts"
  fi
  local names; names=$(printf '%s\n' "$(hostname)" "$(hostname -f 2>/dev/null || true)" "$(hostname -s 2>/dev/null || true)" \
                       $(getent hosts 127.0.0.1 "$(hostname)" 2>/dev/null | cut -d' ' -f2-) | grep -vx localhost | grep -v '^$' | sort -u | tr '\n' ' ')
  if [ "$(cat "$COMMON/act_qmaster" 2>/dev/null)" != localhost ] || ! grep -qx "localhost $names" "$COMMON/host_aliases" 2>/dev/null; then
    stop  # a running daemon keeps the old names
    echo "localhost $names" > "$COMMON/host_aliases"
    echo localhost > "$COMMON/act_qmaster"
  fi
  running sge_qmaster || { say "starting sge_qmaster"; /usr/sbin/sge_qmaster; }
  wait_for 60 "sge_qmaster" qconf -sh
  local cfg; cfg=$(mktemp -d)
  qconf -sconf global | sed -E 's/^(min_uid|min_gid)[[:space:]].*/\1 0/; s/^load_report_time[[:space:]].*/load_report_time 00:00:05/' > "$cfg/global"
  (cd "$cfg" && qconf -Mconf global >/dev/null 2>&1)
  qconf -ssconf | sed -E 's/^schedule_interval[[:space:]].*/schedule_interval 0:0:2/' > "$cfg/sched"
  qconf -Msconf "$cfg/sched" >/dev/null 2>&1
  qconf -sh | grep -qx localhost || qconf -ah localhost >/dev/null
  qconf -ss | grep -qx localhost || qconf -as localhost >/dev/null
  if ! qconf -shgrpl 2>/dev/null | grep -qx @allhosts; then
    printf 'group_name @allhosts\nhostlist localhost\n' > "$cfg/allhosts"; qconf -Ahgrp "$cfg/allhosts" >/dev/null
  else
    qconf -shgrp @allhosts | grep -q 'hostlist.*localhost' || qconf -aattr hostgroup hostlist localhost @allhosts >/dev/null
  fi
  if ! qconf -sql 2>/dev/null | grep -qx all.q; then
    qconf -sq | sed -E "s/^qname .*/qname all.q/; s/^hostlist .*/hostlist @allhosts/; s/^slots .*/slots $(nproc)/;
                        s/^pe_list .*/pe_list NONE/; s/^load_thresholds .*/load_thresholds NONE/;
                        s#^shell .*#shell /bin/bash#" > "$cfg/all.q"
    qconf -Aq "$cfg/all.q" >/dev/null
  fi
  qconf -sq all.q | grep -q '^notify[[:space:]]*00:10:00' || qconf -mattr queue notify 00:10:00 all.q >/dev/null
  rm -rf "$cfg"
  running sge_execd || { say "starting sge_execd"; /usr/sbin/sge_execd; }
  wait_for 90 "the execution host to report" bash -c "qstat -f -q all.q | grep -q '^all.q@localhost' && ! qstat -f -q all.q -qs u | grep -q '^all.q@'"
  say "ready: $(qstat -f -q all.q | grep '^all.q@')"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) qstat -f ;;
  *) echo "usage: $0 [start|stop|status]"; exit 2 ;;
esac
