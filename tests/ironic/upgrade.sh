#!/bin/bash
# Rolling-upgrade cases of the Ironic e2e suite (sourced by e2e.sh; they run
# on its stack). Both directions against $UPGRADE_FROM, the last commit
# before versioned RPC and state files (issue 16):
#   7a this tree's conductor side (ironic_dpu) with the agent built from
#      $UPGRADE_FROM: deploy, NIC and disk hot-plug, undeploy, deploy again;
#   7b this tree's agent started in place on the state that old agent wrote
#      (nothing on the DPU may change), with the conductor side of
#      $UPGRADE_FROM: NIC and disk hot-plug, undeploy, deploy.
# The old code comes from `git archive` of the repository the suite runs in
# (CI runs on a full clone); a missing commit fails the case and says so.
# shellcheck disable=SC2034   # variables are used by e2e.sh
UPGRADE_FROM=${UPGRADE_FROM:-d75592a}

# upgrade_build_start: unpack $UPGRADE_FROM into $OLD_SRC and build its
# agent in the background (niced, so the timed cases before it keep their
# CPU): the suite starts it early and 7a waits for it.
upgrade_build_start() {
  OLD_SRC=$BASE/old-$UPGRADE_FROM; OLD_AGENT=$BASE/bin/ironic-dpu-agent-$UPGRADE_FROM
  if ! git -C "$TH_REPO" cat-file -e "$UPGRADE_FROM^{commit}" 2>/dev/null; then
    echo "commit $UPGRADE_FROM (the rolling-upgrade baseline) is not in $TH_REPO:" \
      "these cases need the repository's history (a shallow clone? git fetch --unshallow)" > "$BASE/log/go-build-old.out"
    return 0
  fi
  mkdir -p "$OLD_SRC"
  th_spawn go-build-old bash -c "git -C '$TH_REPO' archive '$UPGRADE_FROM' | tar -x -C '$OLD_SRC' &&
    cd '$OLD_SRC' && nice -n 19 go build -o '$OLD_AGENT' ./cmd/ironic-dpu-agent"
}

# upgrade_old_tree: wait for the build upgrade_build_start began.
upgrade_old_tree() {
  [ -n "${OLD_AGENT:-}" ] || upgrade_build_start
  local t0=$SECONDS pid; pid=$(th_pid go-build-old)
  [ -z "$pid" ] || th_wait 600 "the build of $UPGRADE_FROM's agent" bash -c "! kill -0 $pid 2>/dev/null"
  if [ ! -x "$OLD_AGENT" ]; then
    th_log "  no agent of $UPGRADE_FROM: $(tail -5 "$BASE/log/go-build-old.out" 2>/dev/null)"; return 1
  fi
  th_log "  agent of $UPGRADE_FROM ready (waited $((SECONDS - t0))s for its build)"
}

agent_rpc_version() { agent_cli "$1" status 2>/dev/null | jq -r .rpc_api_version; }
state_schema() { jq -r '.schema_version // "none"' "$BASE/agent-$NODE4/state/desired.json"; }
volume_nsids() { agent_state "$NODE4" | jq -c '[.observed.volumes[] | {volume_id, nsid, state}] | sort_by(.volume_id)'; }
nsids_are() { [ "$(volume_nsids)" = "$1" ]; }
loaded_schema_1() {   # the agent's last start read a schema 1 (unversioned) state file
  grep 'desired state loaded' "$BASE/log/agent-$NODE4.out" | tail -1 | grep -Eq '"schema_version": ?"1"'
}

upgrade_deploy() {
  # undeploy detached the VIFs (Nova attaches them again before a boot)
  bm node vif list n4 -f value -c ID | grep -q "$UP_VIF1" || bm node vif attach n4 "$UP_VIF1" || return 1
  # with a config drive: by URL to an agent of API 1.2, inline to an older one
  bm node deploy n4 --config-drive '{"meta_data": {"hostname": "n4"}, "user_data": "#cloud-config\n# n4\n"}' || return 1
  wait_state "$NODE4" active 90 || return 1
  expect "config drive attached" th_wait 15 "n4 config drive" drive_attached "$NODE4" || return 1
  expect "boot volume nsid 1" th_wait 15 "n4 boot attached" vol_attached "$NODE4" "$UP_BOOT_VOL" 1 &&
  expect "data volume attached" vol_attached "$NODE4" "$UP_DATA_VOL" &&
  expect "VIF1 plugged+bound" th_wait 15 "n4 VIF1 bound" vif_plugged "$NODE4" "$UP_VIF1" &&
  expect "VIF1 bound in OVN" th_wait 10 "n4 VIF1 ovn-installed" ovn_bound "$UP_VIF1" &&
  expect "power on" [ "$(node_field "$NODE4" power_state)" = "power on" ]
}

upgrade_undeploy() {
  bm node undeploy n4 || return 1
  wait_state "$NODE4" available 60 || return 1
  expect "no volumes" th_wait 10 "n4 volumes gone" no_volumes "$NODE4" &&
  expect "VIF1 unplugged" th_wait 10 "n4 VIF1 gone" vif_absent "$NODE4" "$UP_VIF1" &&
  expect "VIF1 gone from br-int" th_wait 10 "n4 VIF1 port gone" ovs_gone "$UP_VIF1" &&
  expect "power off" [ "$(node_field "$NODE4" power_state)" = "power off" ]
}

# NIC hot-plug (vif attach/detach) and disk hot-plug (a new volume target
# pushed with sync_state, removed with detach_volume) on the active NODE4.
upgrade_hotplug() {
  local vif1_row; vif1_row=$(ovs_iface_uuid "$UP_VIF1")
  bm node vif attach n4 "$UP_VIF2" || return 1
  expect "NIC hot-plug: VIF2 plugged+bound" th_wait 15 "n4 VIF2 bound" vif_plugged "$NODE4" "$UP_VIF2" &&
  expect "VIF2 bound in OVN" th_wait 10 "n4 VIF2 ovn-installed" ovn_bound "$UP_VIF2" || return 1
  bm node vif detach n4 "$UP_VIF2" || return 1
  expect "NIC hot-unplug: VIF2 gone" th_wait 10 "n4 VIF2 gone" vif_absent "$NODE4" "$UP_VIF2" &&
  expect "VIF2 gone from br-int" th_wait 10 "n4 VIF2 port gone" ovs_gone "$UP_VIF2" &&
  expect "VIF1 untouched (same Interface row)" [ "$(ovs_iface_uuid "$UP_VIF1")" = "$vif1_row" ] || return 1
  add_data_target "$NODE4" "$UP_HOT_VOL" 2 || return 1
  bm node passthru call --http-method POST n4 sync_state >/dev/null || return 1
  expect "disk hot-plug: new volume attached" th_wait 15 "n4 hot volume attached" vol_attached "$NODE4" "$UP_HOT_VOL" &&
  expect "boot still nsid 1" vol_attached "$NODE4" "$UP_BOOT_VOL" 1 || return 1
  bm node passthru call --http-method POST --arg "volume_id=$UP_HOT_VOL" n4 detach_volume >/dev/null || return 1
  expect "disk hot-unplug: volume gone" th_wait 15 "n4 hot volume gone" vol_absent "$NODE4" "$UP_HOT_VOL" &&
  expect "data volume kept" vol_attached "$NODE4" "$UP_DATA_VOL" &&
  expect "host stayed on" [ "$(node_field "$NODE4" power_state)" = "power on" ]
}

case_upgrade_old_agent() {
  upgrade_old_tree || return 1
  # pf1: the other nodes' VIFs use pf0's VFs on the shared br-int
  enroll_node "$NODE4" n4 52:54:00:00:04:01 52:54:00:00:04:02 pf1 || return 1
  add_boot_target "$NODE4" "$UP_BOOT_VOL" && add_data_target "$NODE4" "$UP_DATA_VOL" 1 || return 1
  make_available "$NODE4" || return 1
  ovn_lsp_add "$UP_VIF1" 52:54:00:00:04:01; ovn_lsp_add "$UP_VIF2" 52:54:00:00:04:02
  # with the conductor side's broker user, as agents ran before per-DPU users
  AGENT_BIN=$OLD_AGENT AGENT_BROKER=shared agent_start "$NODE4" || return 1
  expect "the agent of $UPGRADE_FROM serves RPC API 1.0" [ "$(agent_rpc_version "$NODE4")" = 1.0 ] || return 1
  upgrade_deploy || return 1
  # The deploy step asked for apply_state 1.1 (wait); the old agent said
  # UnsupportedVersion and the conductor sent the 1.0 call instead.
  expect "the conductor fell back to apply_state 1.0" \
    grep -q "Node $NODE4: the DPU agent is older than RPC API 1.1 (UnsupportedVersion)" "$IRONIC_DIR"/log/ironic-conductor.log &&
  # The config drive went by URL first (1.2): refused the same way, then inline.
  expect "the conductor sent the config drive inline after the agent refused 1.2" \
    grep -q "Node $NODE4: the DPU agent is older than RPC API 1.2 (UnsupportedVersion); sending its config drive inline" "$IRONIC_DIR"/log/ironic-conductor.log &&
  upgrade_hotplug && upgrade_undeploy && upgrade_deploy || return 1
  # quiesce needs RPC API 1.3: the old agent's refusal is Ironic's
  # UnsupportedDriverExtension (HTTP 400), Nova's "quiesce not supported".
  local err
  err=$(bm node passthru call --http-method POST n4 quiesce 2>&1 >/dev/null) && return 1
  expect "quiesce on the old agent: not supported (400)" \
    grep -q "does not support quiesce" <<<"$err" && grep -q "older than RPC API 1.3 (UnsupportedVersion)" <<<"$err" &&
    grep -q "HTTP 400" <<<"$err"
}

case_upgrade_old_conductor() {
  if ! { [ -x "${OLD_AGENT:-}" ] && in_state "$NODE4" active; }; then th_log "  needs 7a's deployed node"; return 1; fi
  expect "the old agent wrote an unversioned state file (schema 1)" [ "$(state_schema)" = none ] || return 1
  local gen vif1_row nsids
  gen=$(agent_state "$NODE4" | jq -r .desired.generation); vif1_row=$(ovs_iface_uuid "$UP_VIF1"); nsids=$(volume_nsids)
  # Upgrade the agent in place under a running host: this tree's binary on
  # the old agent's state_dir. Nothing on the DPU may change.
  # With the new agent it moves to a broker user of its own (broker-acl).
  agent_stop "$NODE4"
  agent_broker_own "$NODE4" || return 1
  agent_start "$NODE4" || return 1
  expect "the upgraded agent serves RPC API 1.3" [ "$(agent_rpc_version "$NODE4")" = 1.3 ] &&
  expect "with its own broker user" grep -q "rabbit://dpu-$NODE4:\*\*\*@" "$BASE/log/agent-$NODE4.out" &&
  expect "it read the old state (generation $gen)" agent_gen_is "$NODE4" "$gen" &&
  expect "it loaded schema 1" loaded_schema_1 &&
  expect "volumes at the same nsids" th_wait 10 "n4 nsids" nsids_are "$nsids" &&
  expect "VIF1 untouched (same Interface row)" [ "$(ovs_iface_uuid "$UP_VIF1")" = "$vif1_row" ] || return 1
  # Then the conductor side goes back to $UPGRADE_FROM's.
  conductor_restart "$OLD_SRC" || return 1
  local rc=0
  { upgrade_hotplug &&
    expect "the first admission wrote schema 2.1" [ "$(state_schema)" = 2.1 ] &&
    upgrade_undeploy && upgrade_deploy; } || rc=1
  conductor_restart "$BASE/site" || rc=1   # this tree's conductor again for whatever follows
  return $rc
}
