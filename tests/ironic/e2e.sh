#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# End-to-end suite: real Debian ironic-api + ironic-conductor (sqlite, noauth)
# with the dpu hardware type, a private RabbitMQ, OVS/OVN (dummy datapath),
# the SPDK emulator and the real Go agent (sim driver). User-facing steps use
# the `openstack baremetal` CLI; states are polled over REST.
# Usage: tests/ironic/e2e.sh            (TH_KEEP=1 keeps the temp dir)
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=upgrade.sh
. "$HERE/upgrade.sh"
# shellcheck source=takeover.sh
. "$HERE/takeover.sh"

PASSED=0; FAILED=0; FAILURES=()
run_case() {   # run_case NAME FUNCTION
  local name=$1 t0=$SECONDS
  th_log "=== $name"
  if "$2"; then PASSED=$((PASSED + 1)); th_log "PASS $name ($((SECONDS - t0))s)"
  else FAILED=$((FAILED + 1)); FAILURES+=("$name"); th_log "FAIL $name ($((SECONDS - t0))s)"; fi
}
expect() {     # expect DESCRIPTION CMD... : log and fail the case if CMD fails
  local what=$1; shift
  if "$@"; then return 0; fi
  th_log "  expectation failed: $what"; return 1
}

cleanup() {
  set +e
  local n
  for n in "$BASE"/pids/agent-*; do [ -e "$n" ] && th_stop "$(basename "$n")" 10; done
  ironic_down; th_stop spdk 5; ovn_down; rabbit_down; th_stop go-build-old 2
  if [ "${TH_KEEP:-0}" = 1 ] || [ "$FAILED" -gt 0 ]; then th_log "logs kept in $BASE"; else rm -rf "$BASE"; fi
}

# ---------------------------------------------------------------- fixtures
uuidgen_() { cat /proc/sys/kernel/random/uuid; }
NODE1=$(uuidgen_); NODE2=$(uuidgen_); NODE3=$(uuidgen_)
VIF1=$(uuidgen_); VIF2=$(uuidgen_); VIF3=$(uuidgen_)
BOOT_VOL=$(uuidgen_); DATA_VOL=$(uuidgen_); DATA2_VOL=$(uuidgen_); BAD_VOL=$(uuidgen_)
# the rolling-upgrade node (upgrade.sh): its own volumes, VIFs and PF
NODE4=$(uuidgen_); UP_VIF1=$(uuidgen_); UP_VIF2=$(uuidgen_)
UP_BOOT_VOL=$(uuidgen_); UP_DATA_VOL=$(uuidgen_); UP_HOT_VOL=$(uuidgen_)
NQN_BASE=nqn.2010-10.org.openstack

# SPDK remotes: the "storage array" holding the three volumes.
write_remotes() {
  local v
  {
    echo '['
    for v in "$BOOT_VOL" "$DATA_VOL" "$DATA2_VOL" "$UP_BOOT_VOL" "$UP_DATA_VOL" "$UP_HOT_VOL" "$TAKE_VOL"; do
      [ "$v" = "$BOOT_VOL" ] || echo ','
      remote_json "$NQN_BASE:volume-$v" "$v"
    done
    echo ']'
  } > "$BASE/spdk-remotes.json"
}

# jq predicates over the agent's get_state
vol_attached() {  # NODE VOLUME_ID [NSID]
  local js; js=$(agent_state "$1") || return 1
  jq -e --arg v "$2" --arg ns "${3:-}" '.observed.volumes[] | select(.volume_id == $v)
     | select(.state == "attached") | select($ns == "" or (.nsid | tostring) == $ns)' <<<"$js" >/dev/null
}
vol_absent() { local js; js=$(agent_state "$1") || return 1
  jq -e --arg v "$2" '[.observed.volumes[]? | select(.volume_id == $v)] | length == 0' <<<"$js" >/dev/null; }
no_volumes() { local js; js=$(agent_state "$1") || return 1
  jq -e '(.observed.volumes // []) | length == 0' <<<"$js" >/dev/null; }
vif_plugged() {   # NODE PORT_ID : plugged and bound per the agent
  local js; js=$(agent_state "$1") || return 1
  jq -e --arg p "$2" '.observed.vifs[] | select(.port_id == $p) | select(.state == "plugged" and .bound == true)' <<<"$js" >/dev/null
}
agent_gen_is() { [ "$(agent_state "$1" | jq -r .desired.generation)" = "$2" ]; }
vif_on() {        # NODE PORT_ID PF VF : plugged on that host function
  local js; js=$(agent_state "$1") || return 1
  jq -e --arg p "$2" --argjson pf "$3" --argjson vf "$4" '.observed.vifs[] | select(.port_id == $p)
     | select(.state == "plugged" and .function.pf == $pf and .function.vf == $vf)' <<<"$js" >/dev/null
}
vif_absent() { local js; js=$(agent_state "$1") || return 1
  jq -e --arg p "$2" '[.observed.vifs[]? | select(.port_id == $p)] | length == 0' <<<"$js" >/dev/null; }
# OVN/OVS side, independent of the agent's word
ovs_iface_uuid() { vsctl --bare --columns=_uuid find Interface "external_ids:iface-id=$1"; }
ovn_bound() {     # PORT_ID: ovn-installed on the OVS Interface and LSP up in NB
  [ "$(vsctl --bare --columns=external_ids find Interface "external_ids:iface-id=$1" | tr ' ' '\n' | grep -c '^ovn-installed="\?true"\?$')" -ge 1 ] \
    && [ "$(nbctl lsp-get-up "$1")" = up ]
}
ovs_gone() { [ -z "$(ovs_iface_uuid "$1")" ]; }
# conductor log: did a deploy step of NODE return DEPLOYWAIT?
went_async() { grep -q "on node $1 being executed asynchronously" "$IRONIC_DIR"/log/ironic-conductor.log; }
not_async() { ! went_async "$1"; }
# The conductor's log over one case's window: mark it, then read what came after.
cond_mark() { wc -l < "$IRONIC_DIR"/log/ironic-conductor.log; }
cond_since() { tail -n "+$(($1 + 1))" "$IRONIC_DIR"/log/ironic-conductor.log; }
# ironic_opt SECTION KEY: the value the suite wrote into ironic.conf
ironic_opt() { awk -v s="[$1]" -v k="$2" '/^\[/ {in_s = ($0 == s); next}
  in_s && $1 == k && $2 == "=" {print $3; exit}' "$IRONIC_DIR/ironic.conf"; }
not_in() { ! grep -qF -- "$1" <<<"$2"; }   # TEXT HAYSTACK
# log_has NODE ERE <<<LOG: a line naming NODE matches ERE
log_has() { awk -v n="$1" -v p="$2" 'index($0, n) && $0 ~ p {f = 1} END {exit !f}'; }
log_lacks() { ! log_has "$@"; }
# ping_bound_only NODE SECONDS <<<LOG: every "agent unreachable" line of NODE
# is a call that gave up after SECONDS (prints the others)
ping_bound_only() {
  awk -v t="DPU agent on node $1 unreachable (" -v ok="(no reply within $2s " \
    'index($0, t) && !index($0, ok) {print "  unbounded: " $0 > "/dev/stderr"; f = 1} END {exit f}'
}
in_state() { [ "$(node_field "$1" provision_state)" = "$2" ]; }

enroll_node() {   # UUID NAME MAC1 MAC2 [PF]: the ports on PF's VFs 1 and 2 (default pf0)
  local pf=${5:-pf0}
  bm node create --driver dpu --uuid "$1" --name "$2" \
    --deploy-interface dpu --boot-interface dpu --storage-interface dpu \
    --network-interface dpu --vendor-interface dpu \
    --power-interface fake --management-interface fake >/dev/null || return 1
  # The CLI only offers Ironic's in-tree connector types; the API takes 'nqn'.
  api POST /volume/connectors "$(jq -nc --arg n "$1" '{node_uuid:$n, type:"nqn", connector_id:("nqn.2014-08.org.nvmexpress:uuid:" + $n)}')" >/dev/null || return 1
  bm port create "$3" --node "$1" --extra "dpu_function=${pf}vf1" >/dev/null || return 1
  bm port create "$4" --node "$1" --extra "dpu_function=${pf}vf2" >/dev/null || return 1
}
# Boot volume in Cinder's old NVMe-oF format, through the CLI.
add_boot_target() {   # NODE VOLUME_ID
  bm volume target create --node "$1" --type nvmeof --boot-index 0 --volume-id "$2" \
    --property "nqn=$NQN_BASE:volume-$2" --property target_portal=$CINDER_IP \
    --property target_port=4420 --property transport_type=tcp --property ns_id=1 >/dev/null
}
# Data volume in the new format (portals is a list: the CLI's --property
# cannot express it, so this one goes through the REST API like Nova would).
add_data_target() {   # NODE VOLUME_ID BOOT_INDEX
  api POST /volume/targets "$(jq -nc --arg n "$1" --arg v "$2" --argjson bi "$3" --arg nqn "$NQN_BASE:volume-$2" --arg ip $CINDER_IP \
    '{node_uuid:$n, volume_type:"nvmeof", volume_id:$v, boot_index:$bi,
      properties:{target_nqn:$nqn, vol_uuid:$v, portals:[[$ip, "4420", "tcp"]]}}')" >/dev/null
}
make_available() {    # NODE
  bm node manage "$1" && wait_state "$1" manageable 30 && bm node provide "$1" && wait_state "$1" available 30
}

# ---------------------------------------------------------------- cases
case_deploy() {
  enroll_node "$NODE1" n1 52:54:00:00:01:01 52:54:00:00:01:02 || return 1
  add_boot_target "$NODE1" "$BOOT_VOL" || return 1
  add_data_target "$NODE1" "$DATA_VOL" 1 || return 1
  make_available "$NODE1" || return 1
  ovn_lsp_add "$VIF1" 52:54:00:00:01:01         # what Neutron would create
  bm node vif attach n1 "$VIF1" || return 1     # not active yet: recorded only
  agent_start "$NODE1" || return 1
  local t0=$SECONDS
  # The config drive as a JSON object: Ironic's conductor builds the ISO.
  # Its user data carries 1.1 MB of random bytes (base64): the drive's gzip
  # is over 1 MiB, so it cannot travel inline in apply_state (the agent's
  # max_message_bytes default): the agent fetches it by URL (RPC API 1.2).
  # Too big for argv: the REST API with a body file, as Nova would call it.
  { printf '#cloud-config\n# e2e-ironic\n# '; head -c 1100000 /dev/urandom | base64 -w0; printf '\n'; } > "$BASE/user-data"
  jq -nc --rawfile u "$BASE/user-data" '{target:"active", configdrive:{meta_data:{hostname:"n1"}, user_data:$u}}' > "$BASE/deploy.json"
  curl -sS -f "${IRONIC_H[@]}" -X PUT "$API/v1/nodes/$NODE1/states/provision" -d @"$BASE/deploy.json" || return 1
  wait_state "$NODE1" active 90 || return 1
  th_log "  deploy -> active in $((SECONDS - t0))s"
  expect "power on" [ "$(node_field "$NODE1" power_state)" = "power on" ] &&
  expect "boot volume nsid 1" vol_attached "$NODE1" "$BOOT_VOL" 1 &&
  expect "data volume attached" vol_attached "$NODE1" "$DATA_VOL" &&
  expect "VIF1 plugged+bound (agent)" th_wait 15 "VIF1 bound" vif_plugged "$NODE1" "$VIF1" &&
  expect "VIF1 bound in OVN" ovn_bound "$VIF1" &&
  # The agent converges in milliseconds: the deploy step sees it within
  # [dpu_agent] inline_wait and goes on in the same worker (case 6d: DEPLOYWAIT).
  expect "converged within the deploy step" \
    grep -q "Node $NODE1: DPU agent converged generation [0-9]* in [0-9.]*s (in the deploy step)" "$IRONIC_DIR"/log/ironic-conductor.log &&
  expect "fast path: no DEPLOYWAIT" not_async "$NODE1" &&
  expect "wait state cleared" [ "$(node_field "$NODE1" driver_internal_info.dpu_wait)" = null ] &&
  expect "desired state recorded in driver_internal_info" \
    [ "$(api GET "/nodes/$NODE1" | jq -r '.driver_internal_info.dpu_desired_state.volumes | length')" = 2 ] &&
  config_drive_ok
}

# The JSON config drive reached the host: the agent holds Ironic's ISO
# (label config-2, the user data, meta_data uuid = the node); Ironic's
# driver_internal_info keeps its sha256 only. It went by URL: the
# conductor published its gzip (over 1 MiB) under [deploy] http_root, the
# agent fetched it from http_url, apply_state stayed a few KiB, the URL's
# random name is in no log of the agent or the conductor, and the
# published copy is gone once the deploy converged.
config_drive_ok() {
  local cd iso gzbytes maxreq name
  expect "agent: config drive attached" th_wait 15 "config drive" drive_attached "$NODE1" || return 1
  gzbytes=$(grep -o "Node $NODE1: config drive [0-9a-f]* ([0-9]* bytes, [0-9]* gzip'd) published at http://127.0.0.1:$HTTP_PORT/\.\.\." \
    "$IRONIC_DIR"/log/ironic-conductor.log | tail -1 | sed -E "s/.* ([0-9]+) gzip'd.*/\1/")
  th_log "  config drive gzip: ${gzbytes:-?} bytes"
  expect "conductor published it under http_root (gzip over 1 MiB)" [ "${gzbytes:-0}" -gt 1048576 ] || return 1
  maxreq=$(jq -Rr 'fromjson? | select(.msg == "rpc method done" and .method == "apply_state") | .bytes' \
    "$BASE/log/agent-$NODE1.out" | sort -n | tail -1)
  th_log "  largest apply_state request: ${maxreq:-?} bytes"
  expect "apply_state stayed small (< 16 KiB)" [ -n "$maxreq" ] && [ "$maxreq" -lt 16384 ] &&
  expect "agent fetched it from the conductor's http_url" \
    grep -q "\"msg\":\"config drive fetched\".*\"from\":\"http://127.0.0.1:$HTTP_PORT/\.\.\.\"" "$BASE/log/agent-$NODE1.out" || return 1
  name=$(grep -o "GET /dpu-configdrive/$NODE1-[A-Za-z0-9_-]*\.gz HTTP/1.[01]\" 200" "$BASE/log/ironic-http.out" | tail -1 | cut -d/ -f3 | cut -d' ' -f1)
  expect "the web server served the node's image once" [ -n "$name" ] &&
  expect "its random name is in no agent or conductor log" \
    bash -c "! grep -qF -- '${name#"$NODE1"-}' '$BASE/log/agent-$NODE1.out' '$IRONIC_DIR/log/ironic-conductor.log'" &&
  expect "published copy removed once the deploy converged" \
    [ -z "$(ls -A "$IRONIC_DIR/httpboot/dpu-configdrive" 2>/dev/null)" ] || return 1
  cd=$(agent_state "$NODE1" | jq -c .observed.config_drive)
  iso=$(find "$BASE/agent-$NODE1/config-drive" -type f -name '*.iso' | head -1)
  [ -n "$iso" ] || iso=$(find "$BASE/agent-$NODE1/config-drive" -type f | head -1)
  expect "an image file under config_drive_dir with the agent's sha256" \
    [ -n "$iso" ] && [ "$(sha256sum "$iso" | cut -d' ' -f1)" = "$(jq -r .sha256 <<<"$cd")" ] || return 1
  /usr/bin/python3 "$TH_REPO/tests/python/read_configdrive.py" "$iso" > "$BASE/iso.json" || return 1
  # shellcheck disable=SC2016   # jq variables
  expect "ISO label config-2, meta_data uuid = node, the user data" jq -e --arg n "$NODE1" \
    --rawfile u "$BASE/user-data" '.label == "config-2" and .uuid == $n and .user_data == $u' "$BASE/iso.json" >/dev/null &&
  expect "driver_internal_info: config drive by sha256 only" \
    [ "$(api GET "/nodes/$NODE1" | jq -c .driver_internal_info.dpu_desired_state.config_drive)" = "$(jq -c '{sha256}' <<<"$cd")" ]
}
drive_attached() { agent_state "$1" | jq -e '.observed.config_drive.state == "attached"' >/dev/null; }
drive_gone() { agent_state "$1" | jq -e '.observed.config_drive == null' >/dev/null; }

case_vif_hotplug() {
  local vif1_before; vif1_before=$(ovs_iface_uuid "$VIF1")
  ovn_lsp_add "$VIF2" 52:54:00:00:01:02
  bm node vif attach n1 "$VIF2" || return 1
  expect "VIF2 plugged+bound (agent)" th_wait 15 "VIF2 bound" vif_plugged "$NODE1" "$VIF2" &&
  expect "VIF2 bound in OVN" th_wait 10 "VIF2 ovn-installed" ovn_bound "$VIF2" &&
  expect "vif list shows both" [ "$(bm node vif list n1 -f value -c ID | sort | xargs)" = "$(printf '%s\n' "$VIF1" "$VIF2" | sort | xargs)" ] || return 1
  # port set on the active node re-plugs the port's VIF on another function
  local p2; p2=$(api GET "/ports?address=52:54:00:00:01:02" | jq -r '.ports[0].uuid')
  bm port set "$p2" --extra dpu_function=pf0vf5 || return 1
  expect "VIF2 moved to pf0vf5" th_wait 15 "VIF2 on pf0vf5" vif_on "$NODE1" "$VIF2" 0 5 &&
  expect "VIF2 bound again" th_wait 10 "VIF2 ovn-installed" ovn_bound "$VIF2" || return 1
  bm node vif detach n1 "$VIF2" || return 1
  expect "VIF2 unplugged (agent)" th_wait 10 "VIF2 gone" vif_absent "$NODE1" "$VIF2" &&
  expect "VIF2 gone from br-int" th_wait 10 "VIF2 port gone" ovs_gone "$VIF2" &&
  expect "VIF1 untouched (same Interface row)" [ "$(ovs_iface_uuid "$VIF1")" = "$vif1_before" ] &&
  expect "VIF1 still bound" ovn_bound "$VIF1" &&
  expect "power untouched" [ "$(node_field "$NODE1" power_state)" = "power on" ]
}

# One request followed from the Ironic API to the DPU: the global request id
# a caller (Nova) sends as X-OpenStack-Request-ID reaches the agent in the
# RPC context and is on its admission line and on the OVSDB change it made.
case_request_traced() {
  local gid vif=$UP_VIF2
  gid="req-$(uuidgen_)"
  curl -sS -f "${IRONIC_H[@]}" -H "X-OpenStack-Request-ID: $gid" -X POST "$API/v1/nodes/$NODE4/vifs" \
    -d "$(jq -nc --arg v "$vif" '{id:$v}')" || return 1
  expect "VIF plugged" th_wait 15 "traced VIF plugged" vif_plugged "$NODE4" "$vif" &&
  expect "agent: admission line with the global request id" \
    grep -q "\"desired state admitted\".*\"global_request_id\":\"$gid\"" "$BASE/log/agent-$NODE4.out" &&
  expect "agent: the OVSDB change with the global request id" \
    grep -q "\"plugged vif\".*\"global_request_id\":\"$gid\"" "$BASE/log/agent-$NODE4.out" &&
  expect "get_state: the generation's admission record" \
    [ "$(agent_state "$NODE4" | jq -r .admission.global_request_id)" = "$gid" ] || return 1
  bm node vif detach n4 "$vif" && th_wait 10 "traced VIF gone" vif_absent "$NODE4" "$vif"
}

case_volume_hotplug() {
  # Add: create the target (Ironic allows it on a powered-on node) and ask
  # the driver to sync: hot-plug without rebooting the host.
  add_data_target "$NODE1" "$DATA2_VOL" 2 || return 1
  bm node passthru call --http-method POST n1 sync_state >/dev/null || return 1
  expect "data2 hot-plugged" th_wait 15 "data2 attached" vol_attached "$NODE1" "$DATA2_VOL" &&
  expect "boot still nsid 1" vol_attached "$NODE1" "$BOOT_VOL" 1 &&
  expect "host stayed on" [ "$(node_field "$NODE1" power_state)" = "power on" ] || return 1
  # Remove: Ironic only deletes volume targets of a powered-off node, so the
  # operator path is power off (detaches) / delete / power on (attaches).
  bm node power off n1 && wait_power "$NODE1" "power off" || return 1
  expect "volumes detached at power off" th_wait 15 "boot detached" vol_absent "$NODE1" "$BOOT_VOL" &&
  expect "VIF kept at power off" vif_plugged "$NODE1" "$VIF1" || return 1
  local t; t=$(bm volume target list --node n1 -f json | jq -r --arg v "$DATA2_VOL" '.[] | select(."Volume ID" == $v) | .UUID')
  bm volume target delete "$t" || return 1
  bm node power on n1 && wait_power "$NODE1" "power on" || return 1
  expect "boot back as nsid 1" th_wait 15 "boot attached" vol_attached "$NODE1" "$BOOT_VOL" 1 &&
  expect "data back" vol_attached "$NODE1" "$DATA_VOL" &&
  expect "data2 gone" vol_absent "$NODE1" "$DATA2_VOL"
}

# What the sim driver's host sees paused (state_dir/sim-paused.json).
sim_paused() { jq -c '.paused // {}' "$BASE/agent-$1/state/sim-paused.json" 2>/dev/null || echo '{}'; }

case_quiesce() {
  # Nova's quiesce/unquiesce around a volume snapshot, through Ironic's API:
  # the vendor passthru asks the agent (RPC API 1.3) to pause the host's
  # controller; the agent shows it, and resumes on unquiesce.
  local out
  out=$(bm node passthru call --http-method POST n1 quiesce) || return 1
  expect "quiesce answered quiesced" grep -q "'quiesced': True" <<<"$out" &&
  expect "the host's pf0 is paused" [ "$(sim_paused "$NODE1" | jq -r 'keys | join(",")')" = pf0 ] &&
  expect "the agent's status says quiesced until a time" \
    agent_cli "$NODE1" status 2>/dev/null | jq -e '.quiesce.quiesced and (.quiesce.until | length > 0) and .quiesce.max_hold_seconds > 0' >/dev/null || return 1
  out=$(bm node passthru call --http-method POST n1 unquiesce) || return 1
  expect "unquiesce answered not quiesced" grep -q "'quiesced': False" <<<"$out" &&
  expect "the host runs again" [ "$(sim_paused "$NODE1")" = '{}' ] &&
  expect "unquiesce again is fine" bm node passthru call --http-method POST n1 unquiesce >/dev/null &&
  expect "the host stayed on, volumes attached" vol_attached "$NODE1" "$BOOT_VOL" 1 || return 1
  # Only for an active node, with no arguments.
  expect "an argument is refused" refused bm node passthru call --http-method POST --arg hold=9 n1 quiesce &&
  expect "nothing was paused by it" [ "$(sim_paused "$NODE1")" = '{}' ]
}
refused() { ! "$@" 2>/dev/null; }

case_restore_after_dpu_down() {
  local gen_before; gen_before=$(agent_state "$NODE1" | jq -r .desired.generation)
  agent_stop "$NODE1"
  # A DPU reboot also loses SPDK's configuration: restart it empty.
  th_stop spdk 5; spdk_up || return 1
  # The dead agent's server queue outlives it: a call would be delivered
  # there and wait out its timeout. The power hooks ping it with [dpu_agent]
  # ping_timeout and only record the state when no reply comes (storage.py):
  # the conductor's log shows each hook's give-up, and its bound.
  local ping rpc mark t0=$SECONDS
  ping=$(ironic_opt dpu_agent ping_timeout); rpc=$(ironic_opt dpu_agent timeout); mark=$(cond_mark)
  expect "suite config: ping_timeout ($ping) set, below the RPC timeout ($rpc)" \
    [ "${ping:-0}" -gt 0 ] && expect "ping_timeout below timeout" [ "$ping" -lt "${rpc:-0}" ] || return 1
  bm node power off n1 && wait_power "$NODE1" "power off" || return 1
  bm node power on n1 && wait_power "$NODE1" "power on" || return 1
  th_log "  power off+on with the DPU down took $((SECONDS - t0))s"
  # wait_power returned once the node's lock was released: the hooks and
  # their log lines are done
  local win; win=$(cond_since "$mark")
  expect "power actions did not fail" [ "$(node_field "$NODE1" last_error)" = null ] &&
  expect "power off: the ping got no reply within ping_timeout (${ping}s); detachment recorded, not pushed" \
    grep -qF "Volume detachment for node $NODE1 recorded but not applied now: DPU agent on node $NODE1 unreachable (no reply within ${ping}s " <<<"$win" &&
  expect "power on: likewise; attachment recorded, not pushed" \
    grep -qF "Volume attachment for node $NODE1 recorded but not applied now: DPU agent on node $NODE1 unreachable (no reply within ${ping}s " <<<"$win" &&
  expect "no call to the agent waited out the RPC timeout (${rpc}s): every give-up was ping-bound" \
    ping_bound_only "$NODE1" "$ping" <<<"$win" &&
  expect "attach recorded for the agent" \
    [ "$(api GET "/nodes/$NODE1" | jq -r '.driver_internal_info.dpu_desired_state.volumes | length')" = 2 ] || return 1
  agent_start "$NODE1" || return 1
  expect "boot restored as nsid 1" th_wait 30 "boot restored" vol_attached "$NODE1" "$BOOT_VOL" 1 &&
  expect "data restored" vol_attached "$NODE1" "$DATA_VOL" &&
  expect "VIF1 still plugged" th_wait 15 "VIF1" vif_plugged "$NODE1" "$VIF1" &&
  # It restored its own state (generation $gen_before) and announced it; the
  # conductor recorded newer ones while it was down and pushed the latest.
  expect "caught up past its own generation $gen_before" th_wait 15 "agent generation" agent_gen_current "$NODE1" "$gen_before"
}

# publish_raw URL EXCHANGE ROUTING_KEY JSON: a plain AMQP publish
publish_raw() {
  $PY - "$1" "$2" "$3" "$4" <<'PY'
import sys
import kombu
url, exchange, key, body = sys.argv[1:]
with kombu.Connection(url.replace('rabbit://', 'amqp://', 1)) as conn:
    conn.Producer().publish(body.encode(), exchange=exchange, routing_key=key,
                            content_type='application/json')
PY
}
# the broker URL of NODE's DPU: what a compromised DPU holds
dpu_url() { sed -n 's/^transport_url = //p' "$BASE/agent-$1/agent.conf" | head -1; }
recorded_gen() { api GET "/nodes/$1" | jq -r .driver_internal_info.dpu_desired_state.generation; }
no_ironic_creds() { ! grep -qE '^\[ironic\]|api_url|password' "$BASE/agent-$1/agent.conf"; }

case_catch_up_after_hello() {
  # While the DPU is down the conductor decides something (power off
  # detaches the volumes) that the agent never hears: the cast is lost. The
  # agent holds no Ironic credentials; at start it announces the generation
  # it restored on the broker, and the conductor pushes the recorded state.
  expect "the agent's config holds no Ironic API credentials" no_ironic_creds "$NODE1" || return 1
  agent_stop "$NODE1"
  bm node power off n1 && wait_power "$NODE1" "power off" || return 1
  local gen; gen=$(recorded_gen "$NODE1")
  th_log "  recorded generation $gen while the agent was down"
  agent_start "$NODE1" || return 1
  expect "the agent announced itself and the conductor pushed" th_wait 15 "conductor answered the announcement" \
    grep -q "Node $NODE1: its DPU agent announced generation [0-9]*; pushed the recorded state" "$IRONIC_DIR"/log/ironic-conductor.log &&
  expect "agent holds Ironic's recorded generation (newer than $gen)" th_wait 15 "agent generation" agent_gen_current "$NODE1" "$gen" &&
  expect "boot volume detached as recorded" th_wait 15 "boot detached" vol_absent "$NODE1" "$BOOT_VOL" &&
  expect "VIF1 kept" vif_plugged "$NODE1" "$VIF1" || return 1
  # A forged announcement straight into the conductor's queue (the default
  # exchange, which every DPU may write to reply), with the DPU's own broker
  # credentials, is refused: nothing pushed.
  local now; now=$(recorded_gen "$NODE1")
  publish_raw "$(dpu_url "$NODE1")" "" "ironic-dpu-conductor.hello_dpu-test-conductor" \
    "{\"version\": \"1.0\", \"generation\": 0, \"node_uuid\": \"$NODE1\"}" || return 1
  expect "conductor refused the announcement from the default exchange" th_wait 15 "refusal logged" \
    grep -q "Refused a DPU announcement (exchange '', routing key 'ironic-dpu-conductor.hello_dpu-test-conductor'): not published to exchange ironic_dpu" "$IRONIC_DIR"/log/ironic-conductor.log &&
  # an accepted one would be answered once the node's 10 s gap since the
  # last push has passed (hello.MIN_GAP): look after it
  sleep 11
  expect "nothing pushed for it" [ "$(recorded_gen "$NODE1")" = "$now" ] &&
  expect "agent unchanged" agent_gen_is "$NODE1" "$now" || return 1
  bm node power on n1 && wait_power "$NODE1" "power on" || return 1
  expect "boot back as nsid 1 at power on" th_wait 15 "boot attached" vol_attached "$NODE1" "$BOOT_VOL" 1 &&
  expect "data back" vol_attached "$NODE1" "$DATA_VOL"
}
# agent_gen_current NODE GEN: the agent holds what Ironic recorded, past GEN
agent_gen_current() {
  local r; r=$(recorded_gen "$1")
  [ "$r" -gt "$2" ] && agent_gen_is "$1" "$r"
}

case_undeploy() {
  bm node undeploy n1 || return 1
  wait_state "$NODE1" available 60 || return 1
  expect "no volumes" th_wait 10 "volumes gone" no_volumes "$NODE1" &&
  expect "no VIFs" vif_absent "$NODE1" "$VIF1" &&
  expect "no config drive" th_wait 10 "config drive gone" drive_gone "$NODE1" &&
  expect "VIF1 port gone from br-int" ovs_gone "$VIF1" &&
  expect "power off" [ "$(node_field "$NODE1" power_state)" = "power off" ]
}

case_agent_missing() {
  enroll_node "$NODE2" n2 52:54:00:00:02:01 52:54:00:00:02:02 || return 1
  add_boot_target "$NODE2" "$(uuidgen_)" || return 1
  make_available "$NODE2" || return 1
  # No agent ever ran for NODE2: no queue for its topic. The push is
  # published mandatory (at_least_once): the broker returns it at once
  # (MessageUndeliverable) and the deploy step fails in place, with no
  # reply waited for.
  local mark t0=$SECONDS; mark=$(cond_mark)
  bm node deploy n2 || return 1
  wait_state "$NODE2" "deploy failed" 60 || return 1
  local err win; err=$(node_field "$NODE2" last_error); win=$(cond_since "$mark")
  th_log "  deploy failed after $((SECONDS - t0))s; last_error: $err"
  local where="DPU agent on node $NODE2 unreachable (no agent listening on exchange ironic_dpu, topic ironic-dpu-agent.$NODE2)"
  expect "last_error: the unreachable agent, apply_state not delivered" grep -qF "$where: apply_state was not delivered" <<<"$err" &&
  expect "last_error: no reply timeout" not_in "no reply within" "$err" &&
  expect "conductor: the broker returned the push (MessageUndeliverable)" \
    grep -qF "$where: apply_state was not delivered: oslo_messaging.exceptions.MessageUndeliverable" <<<"$win" &&
  expect "conductor: no call to NODE2 timed out waiting for a reply" \
    log_lacks "$NODE2" "no reply within|Timed out waiting for a reply|MessagingTimeout" <<<"$win" &&
  expect "the step failed in place (no DEPLOYWAIT)" not_async "$NODE2" &&
  expect "host not powered on" [ "$(node_field "$NODE2" power_state)" != "power on" ]
}

case_agent_error() {
  # NODE1 is available again; give it a data volume with a transport the
  # agent refuses, and deploy.
  api POST /volume/targets "$(jq -nc --arg n "$NODE1" --arg v "$BAD_VOL" \
    '{node_uuid:$n, volume_type:"nvmeof", volume_id:$v, boot_index:3,
      properties:{nqn:"nqn.2010-10.org.openstack:volume-bad", target_portal:"192.0.2.10",
                  target_port:"4420", transport_type:"carrier-pigeon"}}')" >/dev/null || return 1
  bm node deploy n1 || return 1
  wait_state "$NODE1" "deploy failed" 60 || return 1
  local err; err=$(node_field "$NODE1" last_error)
  th_log "  last_error: $err"
  expect "last_error carries the agent's text" grep -q 'carrier-pigeon' <<<"$err" &&
  expect "names the DPU agent" grep -q "DPU agent of node $NODE1 failed apply_state" <<<"$err" &&
  expect "host not powered on" [ "$(node_field "$NODE1" power_state)" != "power on" ]
}

case_agent_converge_error() {
  # NODE2's boot volume names a target the storage network does not have:
  # the agent admits the state (it is valid), then its reconcile fails. The
  # deploy fails with the agent's reason (seen by the step's inline poll, or
  # by the periodic had it come later).
  agent_start "$NODE2" || return 1
  local vol; vol=$(api GET "/nodes/$NODE2/volume/targets" | jq -r '.targets[] | select(.boot_index == 0) | .volume_id')
  local t0=$SECONDS
  bm node deploy n2 || return 1
  wait_state "$NODE2" "deploy failed" 60 || return 1
  local err gen; err=$(node_field "$NODE2" last_error); gen=$(recorded_gen "$NODE2")
  th_log "  last_error after $((SECONDS - t0))s: $err"
  expect "last_error names the agent and the generation ($gen)" \
    grep -qF "DPU agent of node $NODE2 did not converge on generation $gen: " <<<"$err" &&
  # A wait that ran out fails with failure_reason's "not converged after
  # <state_wait_timeout>s: <pending items>" (desired.py); an agent error
  # fails with "volume <id>: <the item's last_error>" as get_state has it.
  expect "failed on the agent's error, not on state_wait_timeout" not_in "not converged after" "$err" &&
  expect "last_error carries the agent's own error for boot volume $vol at generation $gen" \
    th_wait 10 "agent's error in last_error" agent_error_in "$NODE2" "$vol" "$gen" "$err" &&
  expect "host not powered on" [ "$(node_field "$NODE2" power_state)" != "power on" ] &&
  expect "wait state cleared" [ "$(node_field "$NODE2" driver_internal_info.dpu_wait)" = null ]
}

# agent_error_in NODE VOLUME GEN TEXT: the agent reconciled GEN or later and
# holds VOLUME in error; TEXT says "generation GEN: volume VOLUME: <its error>"
agent_error_in() {
  local js verr; js=$(agent_state "$1") || return 1
  [ "$(jq -r '.observed.generation // 0' <<<"$js")" -ge "$3" ] || return 1
  verr=$(jq -r --arg v "$2" '.observed.volumes[]? | select(.volume_id == $v and .state == "error") | .last_error // empty' <<<"$js")
  [ -n "$verr" ] && grep -qF -- "generation $3: volume $2: $verr" <<<"$4"
}

case_agent_pending() {
  # The agent is still pending after inline_wait: NODE3's VIF has no
  # logical switch port yet (Neutron/OVN late), so OVN does not bind it.
  # The step returns DEPLOYWAIT (nothing holds the lock); the periodic
  # resumes the deploy once OVN binds the port.
  enroll_node "$NODE3" n3 52:54:00:00:03:01 52:54:00:00:03:02 || return 1
  add_boot_target "$NODE3" "$DATA2_VOL" || return 1
  make_available "$NODE3" || return 1
  bm node vif attach n3 "$VIF3" || return 1
  agent_start "$NODE3" || return 1
  bm node deploy n3 || return 1
  expect "waits in DEPLOYWAIT" th_wait 30 "n3 in wait call-back" in_state "$NODE3" "wait call-back" &&
  expect "the deploy step returned DEPLOYWAIT" went_async "$NODE3" &&
  expect "wait recorded" [ "$(node_field "$NODE3" driver_internal_info.dpu_wait.generation)" != null ] &&
  expect "lock released while waiting" [ "$(node_field "$NODE3" reservation)" = null ] &&
  expect "boot volume already attached" vol_attached "$NODE3" "$DATA2_VOL" 1 &&
  expect "host not powered on yet" [ "$(node_field "$NODE3" power_state)" != "power on" ] || return 1
  sleep 2   # several periodic checks (state_check_interval 0.5): still pending
  expect "still waiting while unbound" in_state "$NODE3" "wait call-back" || return 1
  ovn_lsp_add "$VIF3" 52:54:00:00:03:01
  wait_state "$NODE3" active 30 || return 1
  expect "resumed by the periodic" \
    grep -q "Node $NODE3: DPU agent converged generation [0-9]* in [0-9.]*s (in DEPLOYWAIT)" "$IRONIC_DIR"/log/ironic-conductor.log &&
  expect "VIF3 bound" vif_plugged "$NODE3" "$VIF3" &&
  expect "power on" [ "$(node_field "$NODE3" power_state)" = "power on" ] &&
  expect "wait state cleared" [ "$(node_field "$NODE3" driver_internal_info.dpu_wait)" = null ]
}

# The suite's stack (the demo, which sources this file, keeps lib.sh's):
# one PostgreSQL database, so that a second conductor can join it for the
# takeover cases; short heartbeats so that the hash ring drops a dead
# conductor, and the other takes its nodes and locks over, within seconds.
e2e_settings() {
  IRONIC_DB=postgresql
  : "${IRONIC_HEARTBEAT_INTERVAL:=1}" "${IRONIC_HEARTBEAT_TIMEOUT:=8}" "${IRONIC_RING_RESET:=1}"
  : "${IRONIC_PROVISION_CHECK:=1}" "${IRONIC_SYNC_LOCAL_STATE:=1}" "${IRONIC_RPC_TIMEOUT:=15}"
  # a deploy waiting in DEPLOYWAIT outlives a takeover (heartbeat_timeout + ring refresh)
  : "${DPU_STATE_WAIT:=40}"
}

main() {
  e2e_settings
  th_init
  trap cleanup EXIT
  rabbit_up
  ovn_up
  go_build
  upgrade_build_start   # the agent of $UPGRADE_FROM for cases 7a/7b, in the background
  write_remotes
  spdk_up || th_die "spdk emulator did not start"
  ironic_up
  run_case "1 deploy: boot+data volumes and a VIF, node active" case_deploy
  run_case "2 vif attach/detach on an active node (hot-plug)" case_vif_hotplug
  run_case "3 data volume add (sync_state hot-plug) and remove (power cycle)" case_volume_hotplug
  run_case "3b quiesce/unquiesce passthru: the host's controller paused and resumed" case_quiesce
  run_case "4 power off/on while the agent is down; agent restores by itself, then catches up" case_restore_after_dpu_down
  run_case "4b DPU down during power off; the agent announces itself, the conductor pushes" case_catch_up_after_hello
  run_case "5 undeploy: volumes detached, VIFs unplugged, available" case_undeploy
  run_case "6a agent not running: deploy fails fast with a clear last_error" case_agent_missing
  run_case "6b agent refuses bad connection data: deploy failed with its text" case_agent_error
  run_case "6c agent cannot attach the boot volume: deploy fails with its reason" case_agent_converge_error
  run_case "6d agent still pending (VIF not bound yet): DEPLOYWAIT, resumed by the periodic" case_agent_pending
  run_case "7a rolling upgrade: this conductor with the agent of $UPGRADE_FROM" case_upgrade_old_agent
  run_case "7b rolling upgrade: agent upgraded in place, with the conductor of $UPGRADE_FROM" case_upgrade_old_conductor
  run_case "8 a request id from the Ironic API on the agent's admission and OVSDB lines" case_request_traced
  run_case "9a SIGKILL the conductor of a node in DEPLOYWAIT: the other takes it over, deploy completes" case_takeover_deploywait
  run_case "9b SIGKILL the conductor inside a VIF hot-plug: retried on the survivor, completes" case_takeover_hotplug
  run_case "9c a deploy whose resume was lost with its conductor: resumed again after heartbeat_timeout" case_lost_resume
  [ ${#FAILURES[@]} -eq 0 ] || th_log "failed: ${FAILURES[*]}"
  cleanup; trap - EXIT
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
# Sourced by tests/demo/demo.sh for its fixtures; run the suite when executed.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
