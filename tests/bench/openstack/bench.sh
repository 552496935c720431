#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Benchmark (not a test): on the whole-OpenStack test cloud of
# tests/openstack, how long a bare-metal server takes from the create request
# to ACTIVE and to its Neutron port ACTIVE, and the agent's share of each,
# for the network-boot (--image) and boot-from-volume cases; then, on a
# running server, `server add volume` until the namespace is on the DPU,
# an in-use `volume extend` until the DPU's bdev has the new size, and
# `server remove volume` until the namespace is gone (issue 9); and a
# boot-from-volume server moving between the two DPU nodes (issue 17):
# `server migrate` until it runs on the other node (VERIFY_RESIZE), the
# confirm until ACTIVE, and `server unshelve` of the offloaded server until
# ACTIVE, each against a fresh boot-from-volume create in the same run.
#
# The agent's share is measured in the same run from its own log: for each
# desired state it admitted during the create, the duration of the reconcile
# that applied it ("reconciled ... took", agent debug log), summed over both
# DPUs' agents (a move releases one and fills the other). The rest is
# OpenStack (API, scheduler, Ironic conductor, Cinder, Neutron, OVN).
# Creates go through the REST APIs (no CLI start-up in the figures).
# Usage: tests/bench/openstack/bench.sh      (BENCH_RUNS=N, default 3)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../openstack/lib.sh
. "$HERE/../../openstack/lib.sh"
# shellcheck source=../../openstack/flows.sh
. "$HERE/../../openstack/flows.sh"
RUNS=${BENCH_RUNS:-3}
export AGENT_DEBUG=true

cleanup() { set +e; [ -n "${BASE:-}" ] && { stack_down; [ "${OS_KEEP:-0}" = 1 ] || rm -rf "$BASE"; }; }
trap cleanup EXIT

# the tenant's calls (user demo, role member), with the token lib.sh got
ten() { curl -H "X-Auth-Token: $TENANT_TOKEN" "$@"; }
nova_post() { ten -sf "${NOVA_H[@]}" -H 'Content-Type: application/json' -X POST "$NOVA$1" -d "$2"; }
nova_delete() { ten -sf "${NOVA_H[@]}" -X DELETE "$NOVA/servers/$1"; }

# one_run KIND BODY -> appends "kind t0 t_active t_port" (epoch seconds) to $BASE/bench.raw
one_run() {
  local kind=$1 body=$2 t0 sid port ta tp i
  t0=$(os_now)
  sid=$(nova_post /servers "$body" | jq -r .server.id) || return 1
  for ((i = 0; i < 1200; i++)); do
    case $(server_field "$sid" status) in
      ACTIVE) ta=$(os_now); break ;;
      ERROR) os_log "$kind: server ERROR: $(nv "/servers/$sid" | jq -c .server.fault.message)"; return 1 ;;
    esac
    sleep 0.05
  done
  [ -n "${ta:-}" ] || return 1
  port=$(port_of "$sid")
  for ((i = 0; i < 600; i++)); do port_active "$port" && { tp=$(os_now); break; }; sleep 0.05; done
  [ -n "${tp:-}" ] || return 1
  echo "$kind $t0 $ta $tp" >> "$BASE/bench.raw"
  nova_delete "$sid" && wait_server_gone "$sid" 120 && os_wait 120 "node free" node_free
}

# The volume steps, as a tenant's REST calls; the clock stops when the
# DPU's SPDK shows the result (PF0 namespace, bdev size), polled every 0.1 s.
vol_on_dpu() {
  local b; b=$(agent_vol "$1" | jq -r 'select(.state == "attached") | .bdev // empty')
  [ -n "$b" ] && [ "$(pf0_ns_bdev "$(agent_vol "$1" | jq .nsid)")" = "$b" ]
}
vol_size_on_dpu() {
  local b; b=$(agent_vol "$1" | jq -r '.bdev // empty'); [ -n "$b" ] && dpu_bdev_bytes "$b" "$2"
}
VOLB=""   # the DPU bdev of the benchmark's data volume while attached
vol_off_dpu() { agent_vol_gone "$1" && [ -z "$(dpu_bdev "$VOLB")" ]; }
timed() {   # timed KIND CMD... : run CMD, append "KIND t0 t1" to bench.raw
  local kind=$1 t0; shift; t0=$(os_now)
  "$@" || return 1
  echo "$kind $t0 $(os_now) $(os_now)" >> "$BASE/bench.raw"
}
add_volume() {
  nova_post "/servers/$1/os-volume_attachments" "$(jq -nc --arg v "$2" '{volumeAttachment:{volumeId:$v}}')" > /dev/null &&
  os_wait 60 "namespace on the DPU" vol_on_dpu "$2" &&
  VOLB=$(agent_vol "$2" | jq -r .bdev)
}
extend_volume() {
  ten -sf -H 'OpenStack-API-Version: volume 3.42' -H 'Content-Type: application/json' \
    -X POST "$CINDER/volumes/$1/action" -d "{\"os-extend\":{\"new_size\":$2}}" &&
  os_wait 60 "new size on the DPU" vol_size_on_dpu "$1" $(($2 << 30))
}
remove_volume() {
  ten -sf "${NOVA_H[@]}" -X DELETE "$NOVA/servers/$1/os-volume_attachments/$2" &&
  os_wait 60 "namespace gone from the DPU" vol_off_dpu "$2"
}
volume_runs() {   # NET IMG FLAVOR
  local sid vol i
  sid=$(nova_post /servers "$(jq -nc --arg n "$1" --arg i "$2" --arg f "$3" \
    '{server:{name:"bench-vol-host", flavorRef:$f, imageRef:$i, networks:[{uuid:$n}]}}')" | jq -r .server.id) &&
  wait_server "$sid" ACTIVE 120 || return 1
  vol=$(ten -sf "${CINDER_H[@]}" -H 'Content-Type: application/json' -X POST "$CINDER/volumes" \
    -d '{"volume":{"size":1, "name":"bench-data"}}' | jq -r .volume.id) &&
  os_wait 60 "data volume" volume_is "$vol" available || return 1
  for ((i = 1; i <= RUNS; i++)); do
    timed add-volume add_volume "$sid" "$vol" && os_wait 60 "in-use" volume_is "$vol" in-use &&
    timed extend extend_volume "$vol" $((i + 1)) && os_wait 60 "in-use" volume_is "$vol" in-use &&
    timed remove-volume remove_volume "$sid" "$vol" && os_wait 60 "available" volume_is "$vol" available || return 1
  done
  nova_delete "$sid" && wait_server_gone "$sid" 120
}

# move_runs NET VOL FLAVOR: a boot-from-volume server on node 1 (node 2
# free), then per run: migrate (as the operator) to the other node until
# VERIFY_RESIZE, confirm until ACTIVE, shelve until offloaded, unshelve until
# ACTIVE (on whichever node the scheduler picks).
server_action() { adm -sf "${NOVA_H[@]}" -H 'Content-Type: application/json' -X POST "$NOVA/servers/$1/action" -d "$2"; }
timed_action() {   # KIND SERVER BODY STATUS : append "KIND t0 t1 t1"
  local t0; t0=$(os_now)
  server_action "$2" "$3" > /dev/null && wait_server "$2" "$4" 300 || return 1
  echo "$1 $t0 $(os_now) $(os_now)" >> "$BASE/bench.raw"
}
move_runs() {
  local sid i
  node_provide 2 && use_dpu 1 || return 1
  sid=$(nova_post /servers "$(jq -nc --arg n "$1" --arg v "$2" --arg f "$3" \
    '{server:{name:"bench-move", flavorRef:$f, networks:[{uuid:$n}],
      block_device_mapping_v2:[{boot_index:0, uuid:$v, source_type:"volume", destination_type:"volume", delete_on_termination:false}]}}')" \
    | jq -r .server.id) && wait_server "$sid" ACTIVE 120 || return 1
  for ((i = 1; i <= RUNS; i++)); do
    timed_action migrate "$sid" '{"migrate":null}' VERIFY_RESIZE &&
    timed_action confirm "$sid" '{"confirmResize":null}' ACTIVE &&
    server_action "$sid" '{"shelve":null}' > /dev/null && wait_server "$sid" SHELVED_OFFLOADED 300 &&
    timed_action unshelve "$sid" '{"unshelve":null}' ACTIVE || return 1
    os_log "move run $i done"
  done
  nova_delete "$sid" && wait_server_gone "$sid" 120 && os_wait 120 "volume available" volume_is "$2" available
}

report() {
  local n logs=()
  for n in $DPUS; do logs+=("$BASE/log/$(dpu_agent_proc "$n").out"); done
  $PY - "$BASE/bench.raw" "${logs[@]}" <<'PYEOF'
import datetime, json, statistics, sys

runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
logs = []   # one per DPU's agent: generations are per agent
for path in sys.argv[2:]:
    log = []
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        e['t'] = datetime.datetime.strptime(e['ts'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(
            tzinfo=datetime.timezone.utc).timestamp()
        log.append(e)
    logs.append(log)

def took(v):
    return float(v) if not isinstance(v, str) else float(v.rstrip('s'))

def agent_share(t0, t1):
    """Seconds the agents spent applying the desired states admitted in [t0, t1].

    Storage and network reconcile in their own loops, concurrently: per
    state, the slower component's first reconcile of that generation counts.
    """
    return sum(one_agent_share(log, t0, t1) for log in logs)

def one_agent_share(log, t0, t1):
    total = 0.0
    for i, e in enumerate(log):
        if e.get('msg') != 'desired state admitted' or not t0 <= e['t'] <= t1:
            continue
        per = {}
        for f in log[i + 1:]:
            if (f.get('msg') == 'reconciled' and f.get('generation') == e.get('generation')
                    and f.get('component') not in per):
                per[f.get('component')] = took(f['took'])
        total += max(per.values(), default=0.0)
    return total

VOLUME_STEPS = ('add-volume', 'extend', 'remove-volume')
MOVE_STEPS = ('migrate', 'confirm', 'unshelve')
moves = {}
for kind, t0, t1, _ in [r for r in runs if r[0] in MOVE_STEPS]:
    t0, t1 = float(t0), float(t1)
    moves.setdefault(kind, []).append((t1 - t0, agent_share(t0, t1)))
runs = [r for r in runs if r[0] not in MOVE_STEPS]
steps = {}
for kind, t0, t1, _ in [r for r in runs if r[0] in VOLUME_STEPS]:
    t0, t1 = float(t0), float(t1)
    steps.setdefault(kind, []).append((t1 - t0, agent_share(t0, t1)))
runs = [r for r in runs if r[0] not in VOLUME_STEPS]

def medians(r, n):
    """the median of each of the first n columns of rows r"""
    return [statistics.median(x[i] for x in r) for i in range(n)]

rows = {}
for kind, t0, ta, tp in runs:
    t0, ta, tp = float(t0), float(ta), float(tp)
    rows.setdefault(kind, []).append((ta - t0, tp - t0, agent_share(t0, ta), agent_share(t0, tp)))

print('%-16s %4s %12s %12s %12s %14s %14s' % ('case', 'runs', 'to ACTIVE s', 'to port s',
                                              'agent s', 'agent/ACTIVE', 'agent/port'))
for kind, r in rows.items():
    med = medians(r, 4)
    print('%-16s %4d %12.2f %12.2f %12.3f %13.1f%% %13.1f%%' % (
        kind, len(r), med[0], med[1], med[2], 100 * med[2] / med[0], 100 * med[3] / med[1]))
    print('%-16s      all runs (to ACTIVE / to port / agent): %s' % ('', ', '.join(
        '%.2f/%.2f/%.3f' % (a, b, c) for a, b, c, _ in r)))
if 'network-boot' in rows and 'boot-from-volume' in rows:
    nb = statistics.median(x[0] for x in rows['network-boot'])
    bfv = statistics.median(x[0] for x in rows['boot-from-volume'])
    print('boot-from-volume / network-boot time to ACTIVE: %.2fx' % (bfv / nb))
if steps:
    print()
    print('%-16s %4s %18s %10s %12s' % ('volume step', 'runs', 'request->DPU s', 'agent s', 'agent/total'))
    for kind in VOLUME_STEPS:
        r = steps.get(kind) or []
        if not r:
            continue
        tot, ag = medians(r, 2)
        print('%-16s %4d %18.2f %10.3f %11.1f%%   (all: %s)' % (
            kind, len(r), tot, ag, 100 * ag / tot, ', '.join('%.2f' % x[0] for x in r)))
if moves:
    print()
    base = statistics.median(x[0] for x in rows['boot-from-volume']) if 'boot-from-volume' in rows else None
    print('%-16s %4s %12s %10s %12s %22s' % ('move', 'runs', 'to state s', 'agents s', 'agents/total',
                                            'vs boot-from-volume'))
    for kind in MOVE_STEPS:
        r = moves.get(kind) or []
        if not r:
            continue
        tot, ag = medians(r, 2)
        print('%-16s %4d %12.2f %10.3f %11.1f%% %21s   (all: %s)' % (
            kind, len(r), tot, ag, 100 * ag / tot, '%.2fx' % (tot / base) if base else '-',
            ', '.join('%.2f' % x[0] for x in r)))
    print('(migrate: request to VERIFY_RESIZE, running on the other node; confirm: to ACTIVE, source released;')
    print(' unshelve: request to ACTIVE on a node; agents: both DPUs\' agents)')
PYEOF
}

main() {
  stack_up || os_die "stack-up failed"
  case_setup || os_die "setup failed"
  local net img flavor vol i
  net=$(nt "/networks?name=$NET" | jq -r '.networks[0].id')
  img=$(ten -sf "$GLANCE/v2/images?name=$IMAGE" | jq -r '.images[0].id')
  flavor=$(nv "/flavors" | jq -r --arg f "$FLAVOR" '.flavors[] | select(.name == $f) | .id')
  vol=$(ten -sf "${CINDER_H[@]}" -H 'Content-Type: application/json' -X POST "$CINDER/volumes" \
    -d "$(jq -nc --arg i "$img" '{volume:{size:1, name:"bench-vol", imageRef:$i}}')" | jq -r .volume.id)
  os_wait 120 "bench volume" volume_is "$vol" available || os_die "volume not available"
  os_log "stack + setup ready; $RUNS runs per case"
  for ((i = 1; i <= RUNS; i++)); do
    one_run network-boot "$(jq -nc --arg n "$net" --arg i "$img" --arg f "$flavor" \
      '{server:{name:"bench-nb", flavorRef:$f, imageRef:$i, networks:[{uuid:$n}]}}')" || os_die "network-boot run $i failed"
    one_run boot-from-volume "$(jq -nc --arg n "$net" --arg v "$vol" --arg f "$flavor" \
      '{server:{name:"bench-bfv", flavorRef:$f, networks:[{uuid:$n}],
        block_device_mapping_v2:[{boot_index:0, uuid:$v, source_type:"volume", destination_type:"volume", delete_on_termination:false}]}}')" \
      || os_die "boot-from-volume run $i failed"
    os_log "run $i done"
  done
  volume_runs "$net" "$img" "$flavor" || os_die "volume runs failed"
  move_runs "$net" "$vol" "$flavor" || os_die "move runs failed"
  report
}
main "$@"
