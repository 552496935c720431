#!/bin/bash
# The user's flows (sourced by e2e.sh and the benchmark, after lib.sh).
# User-facing steps use the `openstack` CLI; waiting is done by polling the
# REST APIs (each CLI call costs ~2 s of Python start-up).
# shellcheck disable=SC2034,SC2153   # variables are shared with lib.sh and the sourcing scripts

IMAGE=cirros-fake FLAVOR=bm.small NET=net01
NODE=""
MAC1=52:54:00:00:00:01 MAC2=52:54:00:00:00:02 MAC3=52:54:00:00:00:03

expect() {     # expect DESCRIPTION CMD... : log and fail the case if CMD fails
  local what=$1; shift
  if "$@"; then return 0; fi
  os_log "  expectation failed: $what"; return 1
}

# ---------------------------------------------------------------- REST helpers
IR_H=(-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.78')
NOVA_H=(-H 'X-Auth-Token: admin:admin' -H 'X-OpenStack-Nova-API-Version: latest')
CINDER_H=(-H 'X-Auth-Token: admin:admin' -H 'OpenStack-API-Version: volume 3.60')
ir() {   # ir METHOD PATH [JSON]
  if [ $# -ge 3 ]; then curl -sS -f "${IR_H[@]}" -X "$1" "$IRONIC/v1$2" -d "$3"
  else curl -sS -f "${IR_H[@]}" -X "$1" "$IRONIC/v1$2"; fi
}
nv() { curl -sf "${NOVA_H[@]}" "$NOVA$1"; }
nt() { curl -sf "$NEUTRON/v2.0$1"; }
cv() { curl -sf "${CINDER_H[@]}" "$CINDER$1"; }

server_field() { nv "/servers/$1" | jq -r ".server.$2"; }
wait_server() {   # SID STATUS [SECONDS] -> 0 when reached, 1 on ERROR/timeout
  local i st
  for ((i = 0; i < ${3:-120} * 5; i++)); do
    st=$(server_field "$1" status 2>/dev/null)
    [ "$st" = "$2" ] && return 0
    if [ "$st" = ERROR ]; then os_log "  server $1 ERROR: $(nv "/servers/$1" | jq -c .server.fault)"; return 1; fi
    sleep 0.2
  done
  os_log "  server $1 still $st (want $2)"; return 1
}
wait_server_gone() {
  local i
  for ((i = 0; i < ${2:-120} * 5; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${NOVA_H[@]}" "$NOVA/servers/$1")" = 404 ] && return 0
    sleep 0.2
  done; return 1
}
port_of() { nt "/ports?device_id=$1" | jq -r '.ports[0].id // empty'; }
port_field() { nt "/ports/$1" | jq -r ".port.\"$2\""; }
port_active() { [ "$(port_field "$1" status)" = ACTIVE ]; }
port_down() { [ "$(port_field "$1" status)" = DOWN ]; }
volume_status() { cv "/volumes/$1" | jq -r .volume.status; }
volume_is() { [ "$(volume_status "$1")" = "$2" ]; }
node_field() { ir GET "/nodes/$NODE" | jq -r ".$1"; }
node_is() { [ "$(node_field provision_state)" = "$1" ]; }

# available in Ironic and unreserved in Placement = Nova can schedule on it
node_free() {
  [ "$(node_field provision_state)" = available ] &&
  [ "$(curl -sf -H 'X-Auth-Token: admin' "$PLACEMENT/resource_providers/$NODE/inventories" \
       | jq -r '.inventories.CUSTOM_BAREMETAL.reserved // empty')" = 0 ]
}

# ---------------------------------------------------------------- OVN / OVS / agent views
ovs_iface() { vsctl --bare --columns=name find Interface "external_ids:iface-id=$1"; }
ovs_installed() {   # PORT: the OVS Interface with its iface-id carries ovn-installed=true
  [ "$(vsctl --bare --columns=external_ids find Interface "external_ids:iface-id=$1" \
       | tr ' ' '\n' | grep -c '^ovn-installed="\?true"\?$')" -ge 1 ]
}
ovs_gone() { [ -z "$(ovs_iface "$1")" ]; }
lsp_opt() { nbctl --if-exists get Logical_Switch_Port "$1" "options:$2" 2>/dev/null | tr -d '"'; }
lsp_gone() { ! nbctl --bare --columns=name find Logical_Switch_Port "name=$1" | grep -q .; }
sb_chassis_of() {   # PORT -> the name of the chassis its Port_Binding is claimed by
  local ch; ch=$(sbctl --bare --columns=chassis find Port_Binding "logical_port=$1")
  [ -n "$ch" ] && sbctl --bare --columns=name list Chassis "$ch"
}
agent_vif() {   # PORT -> the agent's observed VIF (JSON) or nothing
  agent_state | jq -c --arg p "$1" '.observed.vifs[]? | select(.port_id == $p)'
}
agent_vif_bound() { agent_vif "$1" | jq -e 'select(.state == "plugged" and .bound == true)' >/dev/null; }
agent_vif_gone() { [ -z "$(agent_vif "$1")" ] && agent_state >/dev/null; }
agent_vol() { agent_state | jq -c --arg v "$1" '.observed.volumes[]? | select(.volume_id == $v)'; }
agent_vol_gone() { [ -z "$(agent_vol "$1")" ] && agent_state >/dev/null; }

# The port is wired end to end: Neutron binding to the DPU, OVN LSP pinned to
# the DPU chassis, the agent's representor in br-int with the iface-id and
# ovn-installed, SB claimed by the DPU chassis, Neutron ACTIVE.
port_wired() {   # PORT
  local p=$1 rep
  expect "port $p ACTIVE in Neutron" os_wait 30 "port ACTIVE" port_active "$p" &&
  expect "binding host $DPU_HOST, vnic baremetal, vif ovs" \
    nt "/ports/$p" | jq -e --arg h "$DPU_HOST" '.port | ."binding:host_id" == $h and
      ."binding:vnic_type" == "baremetal" and ."binding:vif_type" == "ovs" and
      (."binding:profile".capabilities | index("switchdev"))' >/dev/null &&
  expect "OVN LSP requested-chassis=$DPU_HOST" [ "$(lsp_opt "$p" requested-chassis)" = "$DPU_HOST" ] &&
  expect "OVN LSP type \"\"" [ "$(nbctl get Logical_Switch_Port "$p" type | tr -d '"')" = "" ] &&
  rep=$(ovs_iface "$p") &&
  expect "representor for $p in br-int named like pf0vfN (got '$rep')" grep -Eq '^pf0vf[0-9]+$' <<<"$rep" &&
  expect "representor on br-int" vsctl port-to-br "$rep" >/dev/null &&
  expect "iface $rep ovn-installed" os_wait 10 "ovn-installed" ovs_installed "$p" &&
  expect "SB Port_Binding claimed by $DPU_CHASSIS" [ "$(sb_chassis_of "$p")" = "$DPU_CHASSIS" ] &&
  expect "agent reports $p plugged and bound" os_wait 15 "agent bound" agent_vif_bound "$p"
}

port_unwired() {   # PORT: nothing left on the DPU
  expect "agent no longer reports $1" os_wait 20 "agent unplug" agent_vif_gone "$1" &&
  expect "no OVS interface with iface-id $1" os_wait 10 "OVS port gone" ovs_gone "$1"
}

# ---------------------------------------------------------------- cases
case_setup() {
  openstack network create "$NET" -f value -c id > /dev/null &&
  openstack subnet create --network "$NET" --subnet-range 10.0.0.0/24 sub01 -f value -c id > /dev/null &&
  head -c 1048576 /dev/urandom > "$BASE/fake.img" &&
  openstack image create --disk-format raw --container-format bare --file "$BASE/fake.img" "$IMAGE" -f value -c id > /dev/null &&
  openstack flavor create --ram 8192 --disk 10 --vcpus 4 --property resources:CUSTOM_BAREMETAL=1 \
    --property resources:VCPU=0 --property resources:MEMORY_MB=0 --property resources:DISK_GB=0 "$FLAVOR" \
    -f value -c id > /dev/null || return 1
  # The operator's enrollment (REST): a dpu node whose DPU is OVN chassis
  # $DPU_HOST; ports name their host function (pf0vfN); connectors: the DPU's
  # host NQN (dpu storage interface) and an iqn, because Cinder Zed insists
  # on an 'initiator' and Nova builds it from iqn connectors only.
  NODE=$(cat /proc/sys/kernel/random/uuid)
  ir POST /nodes "$(jq -nc --arg u "$NODE" --arg h "$DPU_HOST" '{uuid:$u, name:"bm-node-1", driver:"dpu",
      resource_class:"baremetal", deploy_interface:"dpu", boot_interface:"dpu", storage_interface:"dpu",
      network_interface:"dpu", vendor_interface:"dpu", power_interface:"fake", management_interface:"fake",
      driver_info:{dpu_hostname:$h},
      properties:{cpus:4, memory_mb:8192, local_gb:10, cpu_arch:"x86_64"}}')" > /dev/null || return 1
  local mac i=0
  for mac in $MAC1 $MAC2 $MAC3; do
    ir POST /ports "$(jq -nc --arg n "$NODE" --arg m "$mac" --arg f "pf0vf$i" \
      '{node_uuid:$n, address:$m, extra:{dpu_function:$f}}')" > /dev/null || return 1
    i=$((i + 1))
  done
  ir POST /volume/connectors "$(jq -nc --arg n "$NODE" '{node_uuid:$n, type:"nqn", connector_id:("nqn.2014-08.org.nvmexpress:uuid:" + $n)}')" > /dev/null &&
  ir POST /volume/connectors "$(jq -nc --arg n "$NODE" '{node_uuid:$n, type:"iqn", connector_id:("iqn.2004-10.org.example:" + $n)}')" > /dev/null || return 1
  agent_conf "$NODE"
  agent_start || return 1
  local t
  for t in manage:manageable provide:available; do
    ir PUT "/nodes/$NODE/states/provision" "{\"target\":\"${t%%:*}\"}" || return 1
    os_wait 30 "node ${t##*:}" node_is "${t##*:}" || return 1
  done
  # fake power has no state until set; Nova keeps a stateless node reserved
  ir PUT "/nodes/$NODE/states/power" '{"target":"power off"}' || return 1
  expect "node schedulable (available, unreserved in Placement)" os_wait 90 "node in placement" node_free
}

SID1="" PORT1="" T_ACTIVE1="" T_PORT1=""
case_network_boot() {
  local t0; t0=$(os_now)
  SID1=$(openstack server create --flavor "$FLAVOR" --image "$IMAGE" --network "$NET" bm-01 -f value -c id) || return 1
  expect "bm-01 ACTIVE" wait_server "$SID1" ACTIVE 120 || return 1
  T_ACTIVE1=$(os_since "$t0")
  PORT1=$(port_of "$SID1")
  expect "bm-01 has a Neutron port" [ -n "$PORT1" ] || return 1
  os_wait 30 "port ACTIVE" port_active "$PORT1"; T_PORT1=$(os_since "$t0")
  os_log "  bm-01 ACTIVE after ${T_ACTIVE1}s, its port ACTIVE after ${T_PORT1}s"
  port_wired "$PORT1"
}
