#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Fleet benchmark: one ironic-conductor + one RabbitMQ driving N DPU agents
# deployed at once, against N fake-hardware nodes deployed at once in the
# same run (Ironic's own cost: the baseline).
#
# Each dpu node: boot + data volume, one VIF; its agent (sim driver) has its
# own SPDK emulator (an agent owns every idpu-* controller of its SPDK, as on
# a real DPU, so agents cannot share one) and all agents share one OVS/OVN
# br-int: ports carry their node's external_ids and each node gets its own
# VF (node i: VF (i-1) % CARD_VFS of PF (i-1) / CARD_VFS, so N is at most
# the card's CARD_PFS x CARD_VFS), so representor names never collide.
# Prints deploy-all time and its ratio to the baseline, per-node p50/p95,
# failures, and the agents' RSS (mean/max); asserts nothing about time.
# Usage: FLEET_N=100 tests/bench/fleet/run.sh   (default N 100, FLEET_ROUNDS 2,
#        FLEET_OVS_GROUPS (default 4), FLEET_RECONCILE_INTERVAL, FLEET_SPDK_ARGS,
#        FLEET_INLINE_WAIT ([dpu_agent] inline_wait, default 2 as shipped; 0
#        sends every deploy through DEPLOYWAIT and the periodic check),
#        FLEET_DPU_CPUS (CPU list the DPU side is pinned to: agents, SPDK
#        emulators, OVS/ovn-controller chassis; default: the last CPU of
#        a machine with 2 or more, "" = not pinned), FLEET_KEEP=1 keeps the
#        temp dir;
#        IRONIC_DPU_AGENT_BIN / SPDK_EMULATOR_BIN reuse prebuilt binaries)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../ironic/lib.sh
. "$HERE/../../ironic/lib.sh"
N=${FLEET_N:-100}
# The agent's [dpu] pfs / max_vfs_per_pf defaults (the sim driver's card).
CARD_PFS=2 CARD_VFS=127
[ "$N" -le $((CARD_PFS * CARD_VFS)) ] || { echo "FLEET_N=$N: one VF per node, the card has $CARD_PFS PFs x $CARD_VFS VFs" >&2; exit 2; }
ROUNDS=${FLEET_ROUNDS:-2}
# Empty: the agent's default (production); the harness's 5s adds N/5 full
# reconciles a second to a shared machine.
RECONCILE_INTERVAL=${FLEET_RECONCILE_INTERVAL:-}
OVS_GROUPS=${FLEET_OVS_GROUPS:-4}
# Each emulator stands in for the SPDK of its own DPU (its own cores): its
# 25 ms path tick, times N, would otherwise be CPU taken from the conductor.
SPDK_ARGS=${FLEET_SPDK_ARGS---path-tick=1s}
# The shipped inline_wait, not the e2e config's (read by ironic_conf).
export DPU_INLINE_WAIT=${FLEET_INLINE_WAIT:-2}
DRIVER=$TH_REPO/tests/python/fleet_bench.py
# In production every agent runs on its own DPU's cores, beside nothing of
# the control plane's. Here N agents would take the conductor's CPU: the
# scheduler shares it per thread, so 100 runnable agents leave the
# single-threaded conductor a sliver, which no deployment sees. Pinning the
# DPU side (agents, SPDK emulators, and the OVS/ovn-controller chassis that
# stand in for each DPU's own) to one CPU keeps it from starving the control
# plane and still gives 100 DPUs' work a single core between them.
NCPU=$(nproc)
DPU_CPUS=${FLEET_DPU_CPUS-$([ "$NCPU" -ge 2 ] && echo $((NCPU - 1)))}
DPU_PIN=()
[ -n "$DPU_CPUS" ] && DPU_PIN=(taskset -c "$DPU_CPUS")

# th_stop NAME-1..N in parallel (a bare `wait` would wait for the daemons too).
stop_all() {   # PREFIX SECONDS
  local i pids=()
  for ((i = 1; i <= N; i++)); do th_stop "$1-$i" "$2" & pids+=($!); done
  wait "${pids[@]}"
}

fleet_stop() {
  stop_all agent 10
  ironic_down
  stop_all spdk 5
  local g n
  for ((g = 1; g < OVS_GROUPS; g++)); do
    for n in ovn-controller ovs-vswitchd ovsdb-server; do th_stop "$n-g$g" 10; done
  done
  ovn_down; rabbit_down
}

# OVS groups: a real DPU has its own OVSDB, so each agent's libovsdb cache
# and monitor hold that host's ports only. FLEET_OVS_GROUPS=K splits the
# agents over K OVS + ovn-controller chassis (group 0 is the harness's); with
# K=1 all N agents share one br-int and every agent receives every other
# agent's port updates (N^2 monitor traffic no DPU sees: at N=100 the agents
# spent 11-12 CPU-s a deploy round on it, 4-5 s with K=4, while the 3 more
# chassis cost ~0.6 s). One chassis per agent would not fit 2 cores.
group_of() { echo $((($1 - 1) % OVS_GROUPS)); }
group_chassis() { if [ "$1" = 0 ]; then echo "$OVN_SYSTEM_ID"; else echo "dpu-chassis-g$1"; fi; }
group_db() { if [ "$1" = 0 ]; then echo "$OVSDB"; else echo "unix:$BASE/ovs-$1/db.sock"; fi; }

ovs_group_up() {   # G (>= 1): ovsdb-server + ovs-vswitchd (dummy) + ovn-controller as chassis G
  local g=$1 d=$BASE/ovs-$1 db ch
  db=unix:$d/db.sock; ch=$(group_chassis "$g")
  mkdir -p "$d"
  local env=(env OVS_RUNDIR="$d" OVS_LOGDIR="$d" OVS_DBDIR="$d" OVS_SYSCONFDIR="$d"
    OVN_RUNDIR="$d" OVN_LOGDIR="$d" OVN_DBDIR="$d" OVN_SYSCONFDIR="$d")
  ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  th_spawn "ovsdb-server-g$g" "${DPU_PIN[@]}" "${env[@]}" ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" \
    --unixctl="$d/ovsdb-server.ctl" --no-chdir
  th_wait 10 "ovsdb $g" test -S "$d/db.sock" || th_die "ovsdb group $g"
  ovs-vsctl --db="$db" --timeout=10 --no-wait init
  th_spawn "ovs-vswitchd-g$g" "${DPU_PIN[@]}" "${env[@]}" ovs-vswitchd --enable-dummy=override --disable-system "$db" \
    --unixctl="$d/ovs-vswitchd.ctl" --no-chdir
  ovs-vsctl --db="$db" --timeout=10 add-br br-int -- set Bridge br-int datapath_type=dummy fail-mode=secure \
    other-config:disable-in-band=true
  # Encap (type, ip) is unique in the SB: each chassis its own loopback address.
  ovs-vsctl --db="$db" --timeout=10 set Open_vSwitch . external_ids:system-id="$ch" external_ids:hostname="$ch" \
    external_ids:ovn-remote="$SBDB" external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip="127.0.1.$g" \
    external_ids:ovn-bridge=br-int external_ids:ovn-bridge-datapath-type=dummy
  th_spawn "ovn-controller-g$g" "${DPU_PIN[@]}" "${env[@]}" ovn-controller "$db" --no-chdir
}

ovs_groups_up() {
  local g n
  # The harness's own chassis (group 0, started by ovn_up) is DPU side too.
  if [ -n "$DPU_CPUS" ]; then
    for n in ovsdb-server ovs-vswitchd ovn-controller; do taskset -apc "$DPU_CPUS" "$(th_pid $n)" >/dev/null || th_die "pin $n"; done
  fi
  for ((g = 1; g < OVS_GROUPS; g++)); do ovs_group_up "$g"; done
  for ((g = 1; g < OVS_GROUPS; g++)); do
    th_wait 30 "chassis $g" bash -c "[ \"\$(ovn-sbctl --db=$SBDB --bare --columns=name find Chassis name=$(group_chassis "$g"))\" = $(group_chassis "$g") ]" \
      || th_die "ovn-controller of group $g did not register"
  done
  th_log "$OVS_GROUPS OVS/ovn-controller chassis"
}

uuid() { cat /proc/sys/kernel/random/uuid; }

# spec.json (what fleet_bench.py enrolls) and nodes.txt (i uuid boot data vif mac).
make_spec() {
  local i u b d v mac
  : > "$BASE/nodes.txt"
  for ((i = 1; i <= N; i++)); do
    u=$(uuid); b=$(uuid); d=$(uuid); v=$(uuid)
    mac=$(printf '52:54:00:10:%02x:%02x' $((i / 256)) $((i % 256)))
    echo "$i $u $b $d $v $mac" >> "$BASE/nodes.txt"
  done
  for ((i = 1; i <= N; i++)); do uuid; done > "$BASE/baseline.txt"
  jq -n --arg api "$API" --arg ip "$CINDER_IP" --argjson vfs "$CARD_VFS" --rawfile nodes "$BASE/nodes.txt" --rawfile base "$BASE/baseline.txt" '
    {api: $api, cinder_ip: $ip, baseline: ($base | split("\n") | map(select(. != ""))),
     dpu: [$nodes | split("\n")[] | select(. != "") | split(" ")
           | {uuid: .[1], boot: .[2], data: .[3], vif: .[4], mac: .[5], function: (.[0] | tonumber - 1 | "pf\(. / $vfs | floor)vf\(. % $vfs)")}]}' > "$BASE/spec.json"
}

# One emulator per agent, serving that node's two remote volumes.
spdk_fleet_up() {
  local i u b d v mac
  mkdir -p "$BASE/spdk"
  while read -r i u b d v mac; do
    { echo '['; remote_json "nqn.2010-10.org.openstack:volume-$b" "$b"; echo ','
      remote_json "nqn.2010-10.org.openstack:volume-$d" "$d"; echo ']'; } > "$BASE/spdk/$i.json"
    # shellcheck disable=SC2086   # FLEET_SPDK_ARGS is a list of flags
    th_spawn "spdk-$i" "${DPU_PIN[@]}" "$BASE/bin/spdk-emulator" --socket "$BASE/spdk/$i.sock" --remotes "$BASE/spdk/$i.json" $SPDK_ARGS
  done < "$BASE/nodes.txt"
  for ((i = 1; i <= N; i++)); do
    th_wait 30 "spdk emulator $i" test -S "$BASE/spdk/$i.sock" || th_die "spdk emulator $i"
  done
}

# The harness's agent config with this node's emulator and the production
# reconcile_interval (the harness's 5 s would add N/5 reconciles a second).
# The shipped systemd unit's Environment= (Go runtime settings), so the RSS
# measured is the one a DPU gets; FLEET_AGENT_ENV="K=V ..." replaces it.
unit_env() {
  if [ -n "${FLEET_AGENT_ENV+x}" ]; then tr ' ' '\n' <<<"$FLEET_AGENT_ENV"
  else sed -n 's/^Environment=//p' "$TH_REPO/etc/ironic-dpu-agent/ironic-dpu-agent.service" | tr ' ' '\n'; fi | grep .
}

agents_up() {
  local i u b d v mac env=()
  mapfile -t env < <(unit_env)
  th_log "agent environment: ${env[*]:-none}"
  # One broker user per DPU (agent_conf runs broker-acl's rabbitmqctl
  # commands, about a second of CPU each): 4 at a time, before any timing.
  local n=0
  while read -r i u b d v mac; do
    agent_conf "$u" > "$BASE/log/acl-$i.out" 2>&1 &
    if (( ++n % 4 == 0 )); then wait; fi
  done < "$BASE/nodes.txt"
  wait
  while read -r i u b d v mac; do
    [ -f "$BASE/agent-$u/cli.conf" ] || { cat "$BASE/log/acl-$i.out" >&2; th_die "broker user of agent $i"; }
  done < "$BASE/nodes.txt"
  th_log "$N broker users"
  while read -r i u b d v mac; do
    sed -i -e "s#^rpc_socket = .*#rpc_socket = $BASE/spdk/$i.sock#" \
      -e "s#^ovsdb_connection = .*#ovsdb_connection = $(group_db "$(group_of "$i")")#" \
      -e "s#^reconcile_interval = .*#${RECONCILE_INTERVAL:+reconcile_interval = $RECONCILE_INTERVAL}#" \
      "$BASE/agent-$u/agent.conf"
    th_spawn "agent-$i" "${DPU_PIN[@]}" env "${env[@]}" "$BASE/bin/ironic-dpu-agent" serve --config-file "$BASE/agent-$u/agent.conf"
  done < "$BASE/nodes.txt"
  for ((i = 1; i <= N; i++)); do
    th_wait 60 "agent $i consuming" grep -q '"rpc server consuming"' "$BASE/log/agent-$i.out" \
      || { tail -20 "$BASE/log/agent-$i.out" >&2; th_die "agent $i"; }
  done
  th_log "$N agents consuming"
}

lsps_add() {   # every node's VIF as a logical switch port bound to the DPU chassis
  local args=() i u b d v mac
  while read -r i u b d v mac; do
    args+=(-- lsp-add tenant-net "$v" -- lsp-set-addresses "$v" "$mac"
      -- lsp-set-options "$v" "requested-chassis=$(group_chassis "$(group_of "$i")")")
  done < "$BASE/nodes.txt"
  nbctl "${args[@]}"
}

rss_kb() {   # kB of every agent's VmRSS and RssAnon (private; RssFile is mostly the shared binary), "rss anon" a line
  local i p
  for ((i = 1; i <= N; i++)); do
    p=$(th_pid "agent-$i") && awk '/^VmRSS:/{r=$2} /^RssAnon:/{a=$2} END{print r, a}' "/proc/$p/status"
  done
}

# Per-node seconds the conductor spent in the dpu deploy step's agent part
# (apply_state + convergence wait), from the lines ironic_dpu logs.
conductor_dpu_times() {   # SINCE_LINE
  tail -n +"$1" "$IRONIC_DIR/log/ironic-conductor.log" | grep -h 'DPU agent converged generation' \
    | sed -E 's/.* in ([0-9.]+)s.*/\1/'
}

# Agent-side apply_state handling time (the reconcile it runs inline), per call.
agent_apply_times() {
  cat "$BASE"/log/agent-*.out | jq -r 'select(.msg == "rpc method done" and .method == "apply_state") | .took' 2>/dev/null \
    | sed -E 's/s$//' | awk '/ms$/{sub(/ms$/,""); print $1/1000; next} /µs$/{sub(/µs$/,""); print $1/1e6; next} {print}'
}

# CPU seconds used so far by each group of daemons (every process of their
# sessions: th_spawn starts each in its own), one "group seconds" a line.
cpu_groups() {
  local g names sids n
  for g in conductor:ironic-conductor api:ironic-api rabbit:rabbit \
      ovs+ovn:ovsdb-server,ovnnb_db,ovnsb_db,ovs-vswitchd,ovn-northd,ovn-controller agents:agent- spdk:spdk-; do
    names=${g#*:}; sids=
    for n in ${names//,/ }; do
      sids+=$(cat "$BASE/pids/$n"* 2>/dev/null | paste -sd, -),   # prefix: agent-1.., ovsdb-server-g1..
    done
    sids=$(tr -s , <<<"$sids"); sids=${sids#,}
    # utime + stime in clock ticks (ps's TIME is whole seconds)
    printf '%s %s\n' "${g%%:*}" "$(ps -s "${sids%,}" -o pid= | awk '{print "/proc/" $1 "/stat"}' | xargs cat 2>/dev/null \
      | awk -v hz="$(getconf CLK_TCK)" '{s+=$14+$15} END{printf "%.2f", s/hz}')"
  done
}

cpu_delta() {   # BEFORE AFTER -> "group=seconds ..."
  join "$1" "$2" | awk '{printf "%s %ss  ", $1, $3-$2}'
}

stats() {   # LABEL UNIT < numbers -> "  LABEL mean p50 p95 max (n)"
  sort -g | awk -v l="$1" -v u="$2" '{a[NR]=$1; s+=$1} END{if (!NR) {printf "  %s none\n", l; exit}
    printf "  %s mean %.3f%s p50 %.3f%s p95 %.3f%s max %.3f%s (n=%d)\n", l, s/NR, u, a[int((NR*50+99)/100)], u,
      a[int((NR*95+99)/100)], u, a[NR], u, NR}'
}

phase() {   # GROUP TARGET WANT OUT : OUT.json (times), OUT.cpu (CPU seconds by group)
  cpu_groups | sort > "$4.cpu0"
  $PY "$DRIVER" transition "$BASE/spec.json" "$1" "$2" "$3" "$4.json" || th_die "fleet_bench.py $*"
  cpu_groups | sort > "$4.cpu1"
  cpu_delta "$4.cpu0" "$4.cpu1" > "$4.cpu"
}

sums() {   # every phase's result tagged with its group: {"g": "dd", "total": ...}
  local f b
  for f in "$BASE"/[bd][du]-*.json; do b=$(basename "$f"); jq -c --arg g "${b%%-*}" '{g: $g, total}' "$f"; done
}

report_line() {   # LABEL OUT
  jq -r --arg l "$1" '"  \($l): all \(.total*1000|round/1000)s  p50 \(.p50*1000|round/1000)s  p95 \(.p95*1000|round/1000)s  max \(.max*1000|round/1000)s  failures \(.failures)\(if .failures > 0 then "  " + (.errors|join(" | ")) else "" end)"' "$2.json"
  echo "      cpu: $(cat "$2.cpu")"
}

main() {
  th_init
  trap 'fleet_stop; [ -n "${FLEET_KEEP:-}" ] || rm -rf "$BASE"' EXIT
  rabbit_up; ovn_up; ovs_groups_up; go_build
  ironic_up
  make_spec
  lsps_add || th_die "ovn lsps"
  spdk_fleet_up
  agents_up
  rss_kb > "$BASE/rss0.txt"
  th_log "enrolling $N dpu + $N baseline nodes"
  $PY "$DRIVER" enroll "$BASE/spec.json" || th_die "enroll"
  th_log "enrolled"
  local r line
  : > "$BASE/rss.txt"
  for ((r = 1; r <= ROUNDS; r++)); do
    $PY "$DRIVER" attach-vifs "$BASE/spec.json" || th_die "vif attach"
    # ABBA: even rounds run the dpu group first, so neither group always
    # gets the colder (or the warmer) conductor.
    local order="baseline dpu" g
    [ $((r % 2)) = 0 ] && order="dpu baseline"
    for g in $order; do
      line=$(($(wc -l < "$IRONIC_DIR/log/ironic-conductor.log") + 1))
      phase "$g" active active "$BASE/${g:0:1}d-$r"
      [ "$g" = dpu ] && { conductor_dpu_times "$line" > "$BASE/cd-$r.txt"; rss_kb >> "$BASE/rss.txt"; }
    done
    for g in $order; do
      line=$(($(wc -l < "$IRONIC_DIR/log/ironic-conductor.log") + 1))
      phase "$g" deleted available "$BASE/${g:0:1}u-$r"
      [ "$g" = dpu ] && conductor_dpu_times "$line" > "$BASE/cu-$r.txt"
    done
    th_log "round $r ($order): deploy-all baseline $(jq .total "$BASE/bd-$r.json")s dpu $(jq .total "$BASE/dd-$r.json")s"
  done
  echo "fleet bench: N=$N nodes per group, $ROUNDS round(s), 1 conductor, 1 broker, $OVS_GROUPS OVS chassis (fake power; dpu: 2 volumes + 1 VIF, sim driver); DPU side (agents, SPDK emulators, OVS chassis) on CPU ${DPU_CPUS:-any} of $NCPU"
  for ((r = 1; r <= ROUNDS; r++)); do
    echo " round $r"
    report_line "baseline deploy  " "$BASE/bd-$r"
    report_line "dpu deploy       " "$BASE/dd-$r"
    report_line "baseline undeploy" "$BASE/bu-$r"
    report_line "dpu undeploy     " "$BASE/du-$r"
    printf '  deploy-all ratio dpu/baseline %.2fx (target <= 1.3x at N=100)  undeploy-all ratio %.2fx\n' \
      "$(jq -n --slurpfile a "$BASE/dd-$r.json" --slurpfile b "$BASE/bd-$r.json" '$a[0].total / $b[0].total')" \
      "$(jq -n --slurpfile a "$BASE/du-$r.json" --slurpfile b "$BASE/bu-$r.json" '$a[0].total / $b[0].total')"
    stats "conductor dpu deploy step's agent part (apply_state + wait) per node:" s < "$BASE/cd-$r.txt"
    stats "conductor dpu tear_down's agent part (apply_state + wait) per node:" s < "$BASE/cu-$r.txt"
  done
  printf '  overall (sum over rounds) deploy-all ratio %.2fx, undeploy-all ratio %.2fx\n' \
    "$(jq -s '(map(select(.g == "dd")) | map(.total) | add) / (map(select(.g == "bd")) | map(.total) | add)' <(sums))" \
    "$(jq -s '(map(select(.g == "du")) | map(.total) | add) / (map(select(.g == "bu")) | map(.total) | add)' <(sums))"
  agent_apply_times | stats "agent apply_state handling:" s
  local f what
  for f in rss0 rss; do
    what=idle; [ $f = rss ] && what=deployed
    awk '{print $1/1024}' "$BASE/$f.txt" | stats "agent RSS $what:" MiB
    awk '{print $2/1024}' "$BASE/$f.txt" | stats "agent RssAnon (private) $what:" MiB
  done
  printf '  agent RPCs served per node and round: %s\n' "$(cat "$BASE"/log/agent-*.out | jq -r 'select(.msg == "rpc method done" or .msg == "rpc method failed") | .method' 2>/dev/null \
    | sort | uniq -c | awk -v d="$((N * ROUNDS))" '{printf "%s %.1f  ", $2, $1/d}')"
}
main "$@"
