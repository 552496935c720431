#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Benchmark: deploy -> active and undeploy -> available through real Ironic
# with fake power, for a dpu node (boot + data volume, one VIF, real agent
# with the sim driver, SPDK emulator, OVS/OVN) against a fake-hardware node
# measured in the same run (Ironic's own cost: the baseline).
# Prints figures and ratios; asserts nothing about time.
# Usage: tests/bench/ironic/run.sh [ROUNDS]   (default 5; IRONIC_DPU_AGENT_BIN
#        / SPDK_EMULATOR_BIN reuse prebuilt binaries)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../ironic/lib.sh
. "$HERE/../../ironic/lib.sh"
ROUNDS=${1:-5}

now() { date +%s.%N; }
# Poll every 20 ms (the CLI's --wait polls every 10 s).
timed_transition() {   # NODE TARGET WANT -> prints seconds
  local t0 st
  t0=$(now)
  api PUT "/nodes/$1/states/provision" "{\"target\":\"$2\"}" >/dev/null || return 1
  while :; do
    st=$(api GET "/nodes/$1?fields=provision_state,target_provision_state") || return 1
    if [ "$(jq -r '.provision_state + "/" + (.target_provision_state // "none")' <<<"$st")" = "$3/none" ]; then break; fi
    case "$(jq -r .provision_state <<<"$st")" in *failed|error) th_log "node $1 failed: $(node_field "$1" last_error)"; return 1 ;; esac
    sleep 0.02
  done
  awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}'
}

# Agent share: the time the agent spent on the node's change in [FROM, TO],
# from its debug log: RPC handling (apply_state only admits, it returns
# before the reconcile) plus the reconciles, which run in one loop per
# component concurrently (so the slower component counts).
agent_share() {   # NODE FROM TO
  $PY - "$BASE/log/agent-$1.out" "$2" "$3" <<'PYEOF'
import json, sys, datetime
path, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rpc, loops = 0.0, {}
for line in open(path):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    ts = datetime.datetime.fromisoformat(rec['ts'].replace('Z', '+00:00')).timestamp()
    if not t0 <= ts <= t1:
        continue
    if rec.get('msg') == 'rpc method done' and not rec.get('request_id', '').startswith('req-ironic-dpu-agent-cli'):
        rpc += float(rec.get('took', 0))
    elif rec.get('msg') == 'reconciled':
        c = rec.get('component', '')
        loops[c] = loops.get(c, 0.0) + float(rec.get('took', 0))
print('%.3f' % (rpc + max(loops.values(), default=0.0)))
PYEOF
}

# The conductor's view of the same: from pushing the state to seeing the
# agent converged (DEPLOYWAIT + periodic get_state for deploy, a polling
# wait for undeploy), including the broker; ironic_dpu logs it once each.
conductor_share() {   # NODE -> seconds of the latest such line
  grep -h "Node $1: DPU agent converged generation" "$IRONIC_DIR"/log/ironic-conductor.log | tail -1 \
    | sed -E 's/.* in ([0-9.]+)s.*/\1/'
}

median() { sort -g | awk '{a[NR]=$1} END{if (NR%2) printf "%.3f", a[(NR+1)/2]; else printf "%.3f", (a[NR/2]+a[NR/2+1])/2}'; }

main() {
  th_init
  trap 'th_stop "agent-$NODE" 10; ironic_down; th_stop spdk 5; ovn_down; rabbit_down; rm -rf "$BASE"' EXIT
  NODE=$(cat /proc/sys/kernel/random/uuid); BASE_NODE=$(cat /proc/sys/kernel/random/uuid)
  BOOT=$(cat /proc/sys/kernel/random/uuid); DATA=$(cat /proc/sys/kernel/random/uuid)
  VIF=$(cat /proc/sys/kernel/random/uuid)
  rabbit_up; ovn_up; go_build
  { echo '['; remote_json "nqn.2010-10.org.openstack:volume-$BOOT" "$BOOT"; echo ','
    remote_json "nqn.2010-10.org.openstack:volume-$DATA" "$DATA"; echo ']'; } > "$BASE/spdk-remotes.json"
  spdk_up || th_die "spdk emulator"
  ironic_up
  # baseline: fake-hardware, fake deploy
  api POST /nodes "$(jq -nc --arg u "$BASE_NODE" '{uuid:$u, name:"baseline", driver:"fake-hardware",
      deploy_interface:"fake", boot_interface:"fake", power_interface:"fake", management_interface:"fake",
      network_interface:"noop", storage_interface:"noop"}')" >/dev/null || th_die "baseline node"
  # dpu node
  api POST /nodes "$(jq -nc --arg u "$NODE" '{uuid:$u, name:"dpu", driver:"dpu", deploy_interface:"dpu",
      boot_interface:"dpu", storage_interface:"dpu", network_interface:"dpu", vendor_interface:"dpu",
      power_interface:"fake", management_interface:"fake"}')" >/dev/null || th_die "dpu node"
  api POST /volume/connectors "$(jq -nc --arg n "$NODE" '{node_uuid:$n, type:"nqn", connector_id:("nqn.2014-08.org.nvmexpress:uuid:" + $n)}')" >/dev/null
  api POST /volume/targets "$(jq -nc --arg n "$NODE" --arg v "$BOOT" --arg ip "$CINDER_IP" '{node_uuid:$n, volume_type:"nvmeof",
      volume_id:$v, boot_index:0, properties:{nqn:("nqn.2010-10.org.openstack:volume-" + $v), target_portal:$ip,
      target_port:4420, transport_type:"tcp", ns_id:1}}')" >/dev/null
  api POST /volume/targets "$(jq -nc --arg n "$NODE" --arg v "$DATA" --arg ip "$CINDER_IP" '{node_uuid:$n, volume_type:"nvmeof",
      volume_id:$v, boot_index:1, properties:{target_nqn:("nqn.2010-10.org.openstack:volume-" + $v), vol_uuid:$v,
      portals:[[$ip, "4420", "tcp"]]}}')" >/dev/null
  api POST /ports "$(jq -nc --arg n "$NODE" '{node_uuid:$n, address:"52:54:00:00:09:01", extra:{dpu_function:"pf0vf1"}}')" >/dev/null
  ovn_lsp_add "$VIF" 52:54:00:00:09:01
  local n
  for n in "$BASE_NODE" "$NODE"; do
    { timed_transition "$n" manage manageable && timed_transition "$n" provide available; } >/dev/null || th_die "provide $n"
  done
  api POST "/nodes/$NODE/vifs" "{\"id\":\"$VIF\"}" >/dev/null || th_die "vif attach"
  agent_start "$NODE" || th_die "agent"

  local i t0 t1 bd bu dd du ad au cd cu
  : > "$BASE/r.txt"
  for ((i = 1; i <= ROUNDS; i++)); do
    bd=$(timed_transition "$BASE_NODE" active active) || th_die "baseline deploy"
    bu=$(timed_transition "$BASE_NODE" deleted available) || th_die "baseline undeploy"
    t0=$(now); dd=$(timed_transition "$NODE" active active) || th_die "dpu deploy"; t1=$(now)
    ad=$(agent_share "$NODE" "$t0" "$t1"); cd=$(conductor_share "$NODE")
    t0=$(now); du=$(timed_transition "$NODE" deleted available) || th_die "dpu undeploy"; t1=$(now)
    au=$(agent_share "$NODE" "$t0" "$t1"); cu=$(conductor_share "$NODE")
    echo "$bd $bu $dd $du $ad $au $cd $cu" >> "$BASE/r.txt"
    th_log "round $i: baseline deploy ${bd}s undeploy ${bu}s | dpu deploy ${dd}s (agent ${ad}s, rpc ${cd}s) undeploy ${du}s (agent ${au}s, rpc ${cu}s)"
  done
  col() { awk -v c="$1" '{print $c}' "$BASE/r.txt" | median; }
  local mbd mbu mdd mdu mad mau mcd mcu
  mbd=$(col 1); mbu=$(col 2); mdd=$(col 3); mdu=$(col 4); mad=$(col 5); mau=$(col 6); mcd=$(col 7); mcu=$(col 8)
  echo "ironic bench, $ROUNDS rounds, medians (fake power; 2 volumes + 1 VIF on the dpu node):"
  printf '  deploy->active     baseline fake-hardware %6.3fs | dpu %6.3fs | ratio %5.2fx | agent share %6.3fs (%4.1f%%, target <= 1 s: %s)\n' \
    "$mbd" "$mdd" "$(awk -v a="$mdd" -v b="$mbd" 'BEGIN{print a/b}')" "$mad" \
    "$(awk -v a="$mad" -v b="$mdd" 'BEGIN{print 100*a/b}')" "$(awk -v a="$mad" 'BEGIN{print (a<=1)?"met":"MISSED"}')"
  printf '  undeploy->available baseline fake-hardware %6.3fs | dpu %6.3fs | ratio %5.2fx | agent share %6.3fs (%4.1f%%, target <= 1 s: %s)\n' \
    "$mbu" "$mdu" "$(awk -v a="$mdu" -v b="$mbu" 'BEGIN{print a/b}')" "$mau" \
    "$(awk -v a="$mau" -v b="$mdu" 'BEGIN{print 100*a/b}')" "$(awk -v a="$mau" 'BEGIN{print (a<=1)?"met":"MISSED"}')"
  printf '  agent share = RPC handling + the reconciles of the slower component in the agent; conductor-side push-to-converged: deploy %6.3fs, undeploy %6.3fs\n' "$mcd" "$mcu"
}
main "$@"
