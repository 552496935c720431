#!/bin/bash
# The user's flows (sourced by e2e.sh and the benchmark, after lib.sh).
# User-facing steps use the `openstack` CLI; waiting is done by polling the
# REST APIs (each CLI call costs ~2 s of Python start-up).
# shellcheck disable=SC2034,SC2153,SC2016   # variables are shared with lib.sh and the sourcing scripts

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
agent_vol_nsid() { agent_vol "$1" | jq -e --argjson n "$2" 'select(.state == "attached" and .nsid == $n)' >/dev/null; }
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
  expect "interface $rep owned by the agent of node $NODE (ironic-node-uuid), attached-mac = Neutron MAC" \
    [ "$(vsctl get Interface "$rep" external_ids:ironic-node-uuid external_ids:attached-mac | tr -d '"' | xargs)" = \
      "$NODE $(port_field "$p" mac_address)" ] &&
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

# Later flows build on earlier ones: fail (not pass vacuously) without them.
need_bm01() {
  expect "bm-01 from flow 1 is ACTIVE with a port" \
    bash -c '[ -n "$1" ] && [ -n "$2" ]' _ "$SID1" "$PORT1" && [ "$(server_field "$SID1" status)" = ACTIVE ]
}

iface_uuid() { vsctl --bare --columns=_uuid find Interface "external_ids:iface-id=$1"; }

SG="" PORT2="" IF1_BEFORE=""
case_port_add() {
  need_bm01 || return 1
  SG=$(openstack security group create sg-web -f value -c id) &&
  openstack security group rule create --ingress --protocol tcp --dst-port 22 sg-web -f value -c id > /dev/null &&
  PORT2=$(openstack port create --network "$NET" --security-group sg-web port02 -f value -c id) || return 1
  IF1_BEFORE=$(iface_uuid "$PORT1")
  expect "port02 DOWN and not on the DPU before the attach" port_down "$PORT2" &&
  expect "port02 has no OVS interface yet" ovs_gone "$PORT2" || return 1
  openstack server add port bm-01 port02 || return 1
  port_wired "$PORT2" &&
  expect "first port's OVS Interface untouched" [ "$(iface_uuid "$PORT1")" = "$IF1_BEFORE" ] &&
  expect "first port still ACTIVE" port_active "$PORT1"
}

case_security_group() {
  local pg lsp
  expect "port02 from flow 3a is attached to bm-01 (bound to $DPU_HOST)" \
    [ -n "$PORT2" ] && [ "$(port_field "$PORT2" binding:host_id)" = "$DPU_HOST" ] || return 1
  pg=pg_${SG//-/_}
  lsp=$(nbctl --bare --columns=_uuid find Logical_Switch_Port "name=$PORT2")
  expect "port02 is in OVN port group $pg" grep -qw "$lsp" <<<"$(nbctl --bare --columns=ports find Port_Group "name=$pg")" &&
  expect "ACL allowing tcp/22 to the port group" grep -Eq "to-lport .*outport == @$pg && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22.* allow-related" \
    <<<"$(nbctl acl-list "$pg")" &&
  expect "drop ACLs for the bare-metal port (neutron_pg_drop)" grep -qw "$lsp" \
    <<<"$(nbctl --bare --columns=ports find Port_Group name=neutron_pg_drop)" &&
  expect "the ACL is compiled into SB logical flows" grep -q "outport == @$pg && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22" \
    <<<"$(sbctl lflow-list)"
}

case_port_remove() {
  need_bm01 && expect "port02 from flow 3a" [ -n "$PORT2" ] || return 1
  openstack server remove port bm-01 port02 || return 1
  port_unwired "$PORT2" &&
  expect "port02 DOWN again" os_wait 20 "port02 DOWN" port_down "$PORT2" &&
  expect "port02 unbound in Neutron" os_wait 20 "port02 unbound" bash -c \
    "[ \"\$(curl -sf $NEUTRON/v2.0/ports/$PORT2 | jq -r '.port.\"binding:host_id\"')\" = '' ]" &&
  expect "first port's OVS Interface untouched" [ "$(iface_uuid "$PORT1")" = "$IF1_BEFORE" ] &&
  expect "first port still ACTIVE and installed" port_active "$PORT1" &&
  expect "first port still ovn-installed" ovs_installed "$PORT1" &&
  expect "agent still has the first port" agent_vif_bound "$PORT1"
}

case_trace_to_vm() {
  local vm ls1 ls2 mac1 ip1 macv ipv out
  need_bm01 || return 1
  vm=$(openstack port create --network "$NET" vm-port -f value -c id) || return 1
  ls1=$(nbctl lsp-get-ls "$PORT1" | awk '{print $1}'); ls2=$(nbctl lsp-get-ls "$vm" | awk '{print $1}')
  expect "bare-metal port and VM port on one logical switch" [ -n "$ls1" ] && [ "$ls1" = "$ls2" ] || return 1
  mac1=$(port_field "$PORT1" mac_address); ip1=$(nt "/ports/$PORT1" | jq -r '.port.fixed_ips[0].ip_address')
  macv=$(port_field "$vm" mac_address); ipv=$(nt "/ports/$vm" | jq -r '.port.fixed_ips[0].ip_address')
  local dp; dp=$(nbctl get Logical_Switch "$ls1" name | tr -d '"')
  trace() {   # SRC_MAC -> ovn-trace of a new ICMP echo from the bare-metal port to the VM port
    ovn-trace --db="$SBDB" --minimal --ct=new --ct=new "$dp" \
      "inport == \"$PORT1\" && eth.src == $1 && eth.dst == $macv && ip4.src == $ip1 && ip4.dst == $ipv && ip.ttl == 64 && icmp4.type == 8"
  }
  out=$(trace "$mac1"); echo "$out" > "$BASE/log/ovn-trace.out"
  # ovn-trace names ports by their Neutron name when they have one
  expect "ovn-trace: a new ICMP echo from the bare-metal port is output to the VM port (log/ovn-trace.out)" \
    grep -Eq "output\(\"($vm|vm-port)\"\)" <<<"$out" &&
  expect "ovn-trace: the same from a spoofed MAC is dropped (port security)" \
    bash -c '! grep -q output <<<"$1"' _ "$(trace 52:54:00:00:00:99)" &&
  expect "the bare-metal port's MAC is the Ironic port's" [ "$mac1" = "$MAC1" ]
}

case_delete_network_boot() {
  local t0 had=0; t0=$(os_now)
  need_bm01 && had=1
  # delete bm-01 in any state, so that flow 2 gets the node back
  [ -n "$SID1" ] && { openstack server delete --wait bm-01 || return 1; }
  [ $had = 1 ] || return 1
  os_log "  bm-01 deleted after $(os_since "$t0")s"
  port_unwired "$PORT1" &&
  expect "Nova removed the port and its LSP" os_wait 20 "LSP gone" lsp_gone "$PORT1" &&
  expect "node available and schedulable again" os_wait 90 "node free" node_free
}

SID2="" VOL="" PORTB="" T_ACTIVE2="" T_PORT2="" TGT_NQN=""
case_boot_from_volume() {
  local t0 tgt ctrl
  t0=$(os_now)
  VOL=$(openstack volume create --image "$IMAGE" --size 1 vol01 -f value -c id) || return 1
  expect "vol01 available" os_wait 120 "volume available" volume_is "$VOL" available || return 1
  os_log "  vol01 available after $(os_since "$t0")s"
  t0=$(os_now)
  SID2=$(openstack server create --flavor "$FLAVOR" --volume vol01 --network "$NET" bm-02 -f value -c id) || return 1
  expect "bm-02 ACTIVE" wait_server "$SID2" ACTIVE 120 || return 1
  T_ACTIVE2=$(os_since "$t0")
  PORTB=$(port_of "$SID2")
  os_wait 30 "port ACTIVE" port_active "$PORTB"; T_PORT2=$(os_since "$t0")
  os_log "  bm-02 ACTIVE after ${T_ACTIVE2}s, its port ACTIVE after ${T_PORT2}s"
  tgt=$(ir GET "/volume/targets?node=$NODE&detail=true" | jq -c '.targets[0]')
  echo "$tgt" > "$BASE/log/volume-target.json"
  TGT_NQN=$(jq -r .properties.nqn <<<"$tgt")
  expect "Ironic volume target: nvmeof, boot_index 0, vol01, Cinder's legacy NVMe/TCP data" \
    jq -e --arg v "$VOL" --arg p "$NVMF_PORT" '.volume_type == "nvmeof" and .boot_index == 0 and .volume_id == $v
      and .properties.transport_type == "tcp" and .properties.target_port == $p and (.properties.nqn | startswith("nqn."))' \
      <<<"$tgt" >/dev/null &&
  expect "vol01 in-use by bm-02 in Cinder" [ "$(cv "/volumes/$VOL" | jq -r '.volume.status + " " + .volume.attachments[0].server_id')" = "in-use $SID2" ] &&
  expect "agent: vol01 attached as nsid 1" os_wait 15 "agent volume" agent_vol_nsid "$VOL" 1 &&
  ctrl=$(dpu_spdk_rpc bdev_nvme_get_controllers | jq -c --arg n "$TGT_NQN" '[.result[] | select(.ctrlrs[].trid.subnqn == $n)]') &&
  echo "$ctrl" > "$BASE/log/dpu-controllers.json" &&
  expect "DPU SPDK: a controller to Cinder's target $TGT_NQN on 127.0.0.1:$NVMF_PORT with the DPU's host NQN" \
    jq -e --arg p "$NVMF_PORT" --arg h "nqn.2014-08.org.nvmexpress:uuid:$NODE" 'length == 1 and (.[0].ctrlrs[0] |
      .state == "enabled" and .trid.trtype == "TCP" and .trid.traddr == "127.0.0.1" and .trid.trsvcid == $p
      and .host.nqn == $h)' <<<"$ctrl" >/dev/null &&
  expect "target SPDK exports vol01's lvol in $TGT_NQN" target_exports "$TGT_NQN" "$VOL" &&
  port_wired "$PORTB"
}

target_exports() {   # NQN VOLUME_ID: the subsystem's namespace is the lvol lvs0/volume-<id>
  local bdev
  bdev=$(spdk_rpc nvmf_get_subsystems | jq -r --arg n "$1" '.result[] | select(.nqn == $n) | .namespaces[0].bdev_name')
  [ -n "$bdev" ] && spdk_rpc bdev_get_bdevs "{\"name\":\"$bdev\"}" | jq -e --arg a "lvs0/volume-$2" '.result[0].aliases | index($a)' >/dev/null
}
target_gone() { ! spdk_rpc nvmf_get_subsystems | jq -e --arg n "$1" '.result[] | select(.nqn == $n)' >/dev/null; }
dpu_ctrl_gone() { dpu_spdk_rpc bdev_nvme_get_controllers | jq -e --arg n "$1" '[.result[] | select(.ctrlrs[].trid.subnqn == $n)] | length == 0' >/dev/null; }

case_delete() {
  local t0; t0=$(os_now)
  expect "bm-02 and vol01 from flow 2" [ -n "$SID2" ] && [ -n "$VOL" ] && [ -n "$PORTB" ] && [ -n "$TGT_NQN" ] || return 1
  openstack server delete --wait bm-02 || return 1
  os_log "  bm-02 deleted after $(os_since "$t0")s"
  expect "vol01 available again in Cinder" os_wait 60 "volume available" volume_is "$VOL" available &&
  expect "agent: vol01 detached" os_wait 20 "agent detach" agent_vol_gone "$VOL" &&
  expect "DPU SPDK: controller to $TGT_NQN gone" os_wait 10 "ctrl gone" dpu_ctrl_gone "$TGT_NQN" &&
  expect "Cinder's target no longer exports $TGT_NQN" os_wait 20 "export gone" target_gone "$TGT_NQN" &&
  expect "Ironic volume target removed" [ "$(ir GET "/volume/targets?node=$NODE" | jq '.targets | length')" = 0 ] &&
  port_unwired "$PORTB" &&
  expect "node available and schedulable again" os_wait 90 "node free" node_free
}
