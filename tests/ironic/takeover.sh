#!/bin/bash
# Conductor takeover cases of the Ironic end-to-end suite (sourced by
# e2e.sh, which runs them last, on its stack with IRONIC_DB=postgresql).
# A second ironic-conductor joins the first on the shared PostgreSQL
# database; Ironic's hash ring maps each node to one of them. The suite
# SIGKILLs the conductor a node is mapped to in the middle of an operation
# and checks that the other one takes the node over (short heartbeat
# timeouts, see e2e.sh) and that the operation completes, with the lock of
# the dead conductor released and no generation admitted twice by the agent.
# shellcheck disable=SC2034   # fixtures are used by e2e.sh

NODE5=$(cat /proc/sys/kernel/random/uuid)
VIF4=$(cat /proc/sys/kernel/random/uuid); VIF5=$(cat /proc/sys/kernel/random/uuid)
TAKE_VOL=$(cat /proc/sys/kernel/random/uuid)   # NODE5's boot volume
NODE5_MAC1=52:54:00:00:05:01 NODE5_MAC2=52:54:00:00:05:02

# Conductor process names (pid files, logs) and their [DEFAULT] host.
C1=ironic-conductor C2=ironic-conductor-2
conductor_host() { echo "dpu-test-${1#ironic-}"; }      # ironic-conductor-2 -> dpu-test-conductor-2
conductor_named() { echo "ironic-${1#dpu-test-}"; }
other_conductor() { if [ "$1" = "$C1" ]; then echo "$C2"; else echo "$C1"; fi; }

# owner NODE: the conductor the API's hash ring maps the node to (the node's
# 'conductor' field), as a process name.
owner() { conductor_named "$(node_field "$1" conductor)"; }
owned_by() { [ "$(node_field "$1" conductor)" = "$(conductor_host "$2")" ]; }

takeover_restart() {   # NAME : C1 runs on ironic.conf alone
  if [ "$1" = "$C1" ]; then conductor_start "$1"; else conductor_start "$1" "$(conductor_host "$1")"; fi
}
conductor_kill() {   # NAME : SIGKILL its whole process group, no shutdown
  local pid; pid=$(th_pid "$1")
  [ -n "$pid" ] || return 1
  disown "$pid" 2>/dev/null   # no "Killed" job notice from bash
  kill -KILL -- "-$pid"
  rm -f "$BASE/pids/$1"
  th_log "  SIGKILLed $1 ($(conductor_host "$1"), pid $pid)"
}

# Both conductors registered, and the API's ring (refreshed every
# hash_ring_reset_interval) spreads nodes over both of them again.
two_conductors() {
  wait_conductors 2 || return 1
  th_wait 15 "the API's hash ring to hold both conductors" \
    bash -c "[ \"\$(curl -sf -H 'X-OpenStack-Ironic-API-Version: latest' $API/v1/conductors | jq '[.conductors[] | select(.alive)] | length')\" = 2 ]"
  sleep 1.5   # > hash_ring_reset_interval: every ring has both
}

# The agent admits each generation once and in order (its Conflict refuses
# a used generation with other content): the log's sequence is strictly
# increasing.
generations_once() {   # NODE
  local gens
  gens=$(jq -rR 'fromjson? | select(.msg == "desired state admitted") | .generation' "$BASE/log/agent-$1.out")
  th_log "  agent of $1 admitted generations: $(echo "$gens" | xargs)"
  [ -n "$gens" ] && awk 'NR > 1 && $1 <= prev { bad = 1 } { prev = $1 } END { exit bad }' <<<"$gens"
}

# Ironic's record (driver_internal_info) and the agent agree: the same
# generation, the same volumes and VIFs.
record_matches() {   # NODE
  local rec ag
  rec=$(api GET "/nodes/$1" | jq -c '.driver_internal_info | [.dpu_generation, .dpu_desired_state.generation,
    ([.dpu_desired_state.volumes[]?.volume_id] | sort), ([.dpu_desired_state.vifs[]?.port_id] | sort)]') || return 1
  ag=$(agent_state "$1" | jq -c '.desired | [.generation, .generation,
    ([.volumes[]?.volume_id] | sort), ([.vifs[]?.port_id] | sort)]') || return 1
  [ "$rec" = "$ag" ]
}
unlocked() { [ "$(node_field "$1" reservation)" = null ]; }
port_vif() {   # MAC : the VIF Ironic recorded on that port
  api GET "/ports/detail?address=$1" | jq -r '.ports[0].internal_info.tenant_vif_port_id // empty'
}
# NODE CONDUCTOR VIF MAC: the conductor holds the node's lock and saved the
# VIF on the port, which it does right before it calls the agent.
inside_attach() { [ "$(node_field "$1" reservation)" = "$(conductor_host "$2")" ] && [ "$(port_vif "$4")" = "$3" ]; }

# Set-up over REST: a CLI call costs seconds of Python start-up on a loaded
# machine, and cases 1-6 drive the same steps through the CLI.
provision() { api PUT "/nodes/$1/states/provision" "$(jq -nc --arg t "$2" '{target: $t}')"; }
api_enroll() {   # UUID NAME MAC1 MAC2 BOOT_VOLUME : an available dpu node
  local mac vf=0
  api POST /nodes "$(jq -nc --arg u "$1" --arg n "$2" '{uuid: $u, name: $n, driver: "dpu",
    deploy_interface: "dpu", boot_interface: "dpu", storage_interface: "dpu", network_interface: "dpu",
    vendor_interface: "dpu", power_interface: "fake", management_interface: "fake"}')" > /dev/null || return 1
  api POST /volume/connectors "$(jq -nc --arg n "$1" '{node_uuid: $n, type: "nqn", connector_id: ("nqn.2014-08.org.nvmexpress:uuid:" + $n)}')" > /dev/null || return 1
  for mac in "$3" "$4"; do   # on pf0vf1 and pf0vf2, like enroll_node's
    vf=$((vf + 1))
    api POST /ports "$(jq -nc --arg n "$1" --arg m "$mac" --arg f "pf0vf$vf" \
      '{node_uuid: $n, address: $m, extra: {dpu_function: $f}}')" > /dev/null || return 1
  done
  add_data_target "$1" "$5" 0 || return 1
  provision "$1" manage && wait_state "$1" manageable 30 && provision "$1" provide && wait_state "$1" available 30
}

# One DPU at a time: the agents of this suite share one SPDK emulator and
# one br-int, and each treats what it does not know there as drift.
other_agents_stop() {   # NODE : stop every agent but NODE's
  local n
  for n in "$BASE"/pids/agent-*; do
    [ -e "$n" ] && [ "$(basename "$n")" != "agent-$1" ] && th_stop "$(basename "$n")" 10
  done
  return 0
}

case_takeover_deploywait() {
  conductor_start "$C2" "$(conductor_host "$C2")"   # starts while n5 is enrolled
  other_agents_stop "$NODE5"
  agent_start "$NODE5" &    # it reports healthy after seconds: enroll meanwhile
  local agent_job=$!
  api_enroll "$NODE5" n5 "$NODE5_MAC1" "$NODE5_MAC2" "$TAKE_VOL" || return 1
  wait "$agent_job" || return 1
  # no logical switch port yet: OVN will not bind it
  api POST "/nodes/$NODE5/vifs" "$(jq -nc --arg v "$VIF4" '{id: $v}')" > /dev/null || return 1
  two_conductors || return 1
  provision "$NODE5" active || return 1
  expect "waits in DEPLOYWAIT" th_wait 30 "n5 in wait call-back" in_state "$NODE5" "wait call-back" &&
  expect "wait recorded" [ "$(node_field "$NODE5" driver_internal_info.dpu_wait.generation)" != null ] &&
  expect "lock released while waiting" unlocked "$NODE5" || return 1
  local victim survivor t0
  victim=$(owner "$NODE5"); survivor=$(other_conductor "$victim")
  th_log "  n5 waits on $victim; killing it"
  conductor_kill "$victim"
  t0=$SECONDS
  ovn_lsp_add "$VIF4" "$NODE5_MAC1"            # the agent converges now
  wait_state "$NODE5" active 60 || return 1
  th_log "  active $((SECONDS - t0))s after the kill"
  expect "the node maps to the survivor" owned_by "$NODE5" "$survivor" &&
  expect "resumed by the survivor's convergence periodic" grep -q \
    "Node $NODE5: DPU agent converged generation [0-9]* in [0-9.]*s (in DEPLOYWAIT)" "$(conductor_log "$survivor")" || return 1
  # Back to two conductors for the next case, starting while the rest is
  # checked (the same host name: it clears its own stale locks at start).
  takeover_restart "$victim"
  expect "lock released" th_wait 10 "n5 unlocked" unlocked "$NODE5" &&
  expect "wait state cleared" [ "$(node_field "$NODE5" driver_internal_info.dpu_wait)" = null ] &&
  expect "power on" [ "$(node_field "$NODE5" power_state)" = "power on" ] &&
  expect "VIF4 bound" vif_plugged "$NODE5" "$VIF4" && expect "VIF4 bound in OVN" ovn_bound "$VIF4" &&
  expect "boot volume nsid 1" vol_attached "$NODE5" "$TAKE_VOL" 1 &&
  expect "Ironic's record and the agent agree" th_wait 15 "record = agent" record_matches "$NODE5" &&
  expect "every generation admitted once, in order" generations_once "$NODE5" &&
  two_conductors
}

case_takeover_hotplug() {
  local victim survivor agent_pid bg vif4_row rc
  # Whoever owns n5 now has taken it over (sync_local_state_interval):
  # the hot-plug must not meet that take-over's lock.
  sleep 2
  expect "n5 settled" th_wait 20 "n5 unlocked" unlocked "$NODE5" || return 1
  victim=$(owner "$NODE5"); survivor=$(other_conductor "$victim")
  vif4_row=$(ovs_iface_uuid "$VIF4")
  ovn_lsp_add "$VIF5" "$NODE5_MAC2"
  # Stop the agent: the owner's plug_vif waits for it, inside the lock.
  agent_pid=$(th_pid "agent-$NODE5")
  kill -STOP "$agent_pid"
  api POST "/nodes/$NODE5/vifs" "$(jq -nc --arg v "$VIF5" '{id: $v}')" > "$BASE/log/vif5-attach.out" 2>&1 &
  bg=$!
  if ! expect "$victim is inside the hot-plug" th_wait 20 "$victim in vif_attach" \
      inside_attach "$NODE5" "$victim" "$VIF5" "$NODE5_MAC2"; then
    kill -CONT "$agent_pid"; cat "$BASE/log/vif5-attach.out" >&2; return 1
  fi
  sleep 0.5      # the plug_vif call is on its way to the agent
  conductor_kill "$victim"
  kill -CONT "$agent_pid"  # the agent now takes the dead conductor's plug_vif
  local t0=$SECONDS
  # The operator retries once the API routes the node to the survivor and
  # the survivor has cleared the dead conductor's lock.
  expect "the node maps to the survivor" th_wait 30 "n5 on $survivor" owned_by "$NODE5" "$survivor" &&
  expect "the dead conductor's lock released" th_wait 30 "n5 unlocked" unlocked "$NODE5" &&
  expect "... by the survivor's orphan check" grep -q "Forcibly removed reservation of conductor $(conductor_host "$victim") on node $NODE5" \
    "$(conductor_log "$survivor")" || return 1
  th_log "  lock released $((SECONDS - t0))s after the kill"
  expect "retried attach completes on the survivor" bm node vif attach n5 "$VIF5" &&
  expect "VIF5 plugged+bound (agent)" th_wait 15 "VIF5 bound" vif_plugged "$NODE5" "$VIF5" &&
  expect "VIF5 bound in OVN" th_wait 10 "VIF5 ovn-installed" ovn_bound "$VIF5" &&
  expect "VIF4 untouched (same Interface row)" [ "$(ovs_iface_uuid "$VIF4")" = "$vif4_row" ] &&
  expect "boot volume still nsid 1" vol_attached "$NODE5" "$TAKE_VOL" 1 &&
  expect "power untouched" [ "$(node_field "$NODE5" power_state)" = "power on" ] &&
  expect "vif list shows both" [ "$(api GET "/nodes/$NODE5/vifs" | jq -r '.vifs[].id' | sort | xargs)" = "$(printf '%s\n' "$VIF4" "$VIF5" | sort | xargs)" ] &&
  expect "Ironic's record and the agent agree" th_wait 15 "record = agent" record_matches "$NODE5" &&
  expect "every generation admitted once, in order" generations_once "$NODE5" || return 1
  # The call the kill cut short ends with an error (rpc_response_timeout).
  wait "$bg"; rc=$?
  th_log "  the interrupted attach: exit $rc: $(head -c 300 "$BASE/log/vif5-attach.out")"
  expect "the interrupted call failed (the API's RPC timed out), not hung" [ "$rc" -ne 0 ]
}

# What a conductor leaves when it dies between saving the converged wait and
# running its own continue_node_deploy cast (a window too short to hit with
# a kill): the wait marked converged and resumed now, and no resume coming.
lose_resume() {   # NODE : written into the database, as that conductor would
  local info
  info=$(api GET "/nodes/$1" | jq -c --argjson now "$(date +%s)" \
    '.driver_internal_info | .dpu_wait += {converged: true, resumed: $now}') || return 1
  [ "$("$PGBIN/psql" -h "$BASE/pg/sock" -U ironic -d ironic -v ON_ERROR_STOP=1 -v info="$info" -v node="$1" -Atq \
    <<<"UPDATE nodes SET driver_internal_info = :'info' WHERE uuid = :'node'
        AND provision_state = 'wait call-back' RETURNING uuid")" = "$1" ]
}

case_lost_resume() {
  # n5 again in DEPLOYWAIT: undeployed, VIF4 attached again without its
  # logical switch port.
  provision "$NODE5" deleted && wait_state "$NODE5" available 60 || return 1
  nbctl lsp-del "$VIF4" || return 1
  api POST "/nodes/$NODE5/vifs" "$(jq -nc --arg v "$VIF4" '{id: $v}')" > /dev/null || return 1
  provision "$NODE5" active || return 1
  expect "waits in DEPLOYWAIT" th_wait 30 "n5 in wait call-back" in_state "$NODE5" "wait call-back" &&
  expect "resume lost" lose_resume "$NODE5" || return 1
  local t0=$SECONDS
  wait_state "$NODE5" active 40 || return 1
  th_log "  resumed again $((SECONDS - t0))s after the lost resume"
  expect "not before heartbeat_timeout (${IRONIC_HEARTBEAT_TIMEOUT}s)" [ $((SECONDS - t0)) -ge $((IRONIC_HEARTBEAT_TIMEOUT - 1)) ] &&
  expect "the node's owner resumed it again" \
    grep -q "Node $NODE5: its deploy was resumed .* resuming it again" "$(conductor_log "$(owner "$NODE5")")" &&
  expect "lock released" th_wait 10 "n5 unlocked" unlocked "$NODE5" &&
  expect "wait state cleared" [ "$(node_field "$NODE5" driver_internal_info.dpu_wait)" = null ] &&
  expect "power on" [ "$(node_field "$NODE5" power_state)" = "power on" ] &&
  expect "Ironic's record and the agent agree" th_wait 15 "record = agent" record_matches "$NODE5" &&
  expect "every generation admitted once, in order" generations_once "$NODE5"
}
