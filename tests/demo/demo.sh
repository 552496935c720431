#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# The agent's job, end to end, on one machine, narrated: a private RabbitMQ,
# OVS + OVN (the DPU's br-int and ovn-controller), the SPDK emulator (the
# DPU's SPDK and the Cinder NVMe-oF target), Debian's ironic-api and
# ironic-conductor with the dpu hardware type, and the agent (sim driver).
# The user drives it with the stock `openstack baremetal` CLI.
# Usage: tests/demo/demo.sh   (TH_KEEP=1 keeps the temp dir and logs)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../ironic/e2e.sh
. "$HERE/../ironic/e2e.sh"     # harness + fixtures; sourcing does not run the suite

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() {         # show the command as the user types it (bm = openstack baremetal)
  if [ "$1" = bm ]; then printf '$ openstack baremetal %s\n' "${*:2}" >&2; else printf '$ %s\n' "$*" >&2; fi
  "$@"
}
fail() { th_log "DEMO FAILED: $*"; exit 1; }
show_state() {   # the agent's own view, trimmed to what matters
  agent_state "$NODE1" | jq -r '"agent state: generation \(.desired.generation), observed generation \(.observed.generation)",
    (.observed.volumes[] | "  volume \(.volume_id): \(.state), nsid \(.nsid), controller \(.controller), paths \([.paths[]? | "\(.address):\(.port) \(.state)"] | join(", "))"),
    (.observed.vifs[] | "  vif \(.port_id): \(.state), representor \(.representor), ofport \(.ofport), bound \(.bound)")'
}
show_ovn() {     # OVN's view: which chassis bound the port, and OVS's ovn-installed
  local chassis; chassis=$(sbctl --bare --columns=chassis find Port_Binding "logical_port=$1")
  printf 'OVN Port_Binding %s -> chassis %s (%s); OVS Interface %s ovn-installed=%s\n' "$1" \
    "$(sbctl --bare --columns=name list Chassis "$chassis" 2>/dev/null || echo none)" "${chassis:-unbound}" \
    "$(vsctl --bare --columns=name find Interface "external_ids:iface-id=$1")" \
    "$(vsctl --bare --columns=external_ids find Interface "external_ids:iface-id=$1" | tr ' ' '\n' | sed -n 's/^ovn-installed=//p')"
}
demo_cleanup() {
  set +e
  agent_stop "$NODE1"; ironic_down; th_stop spdk 5; ovn_down; rabbit_down
  if [ "${TH_KEEP:-0}" = 1 ]; then th_log "logs kept in $BASE"; else rm -rf "$BASE"; fi
}

th_init
trap demo_cleanup EXIT
say "Bringing up RabbitMQ, OVS/OVN, the SPDK emulator, ironic-api + ironic-conductor (all private, loopback)"
rabbit_up; ovn_up; go_build; write_remotes
spdk_up || fail "spdk emulator"
ironic_up

say "Enrolling node n1 with the dpu hardware type: an nqn connector, a boot volume (nvmeof, boot_index 0), a data volume, two ports"
enroll_node "$NODE1" n1 52:54:00:00:01:01 52:54:00:00:01:02 || fail enroll
add_boot_target "$NODE1" "$BOOT_VOL" || fail "boot target"
add_data_target "$NODE1" "$DATA_VOL" 1 || fail "data target"
make_available "$NODE1" || fail available
run bm node show n1 -f json -c driver -c deploy_interface -c storage_interface -c network_interface -c provision_state | jq -c .
run bm volume target list --node n1 --fields volume_type boot_index volume_id -f value

say "Neutron's port for the VPC (an OVN logical switch port), attached to the node; the DPU agent starts"
ovn_lsp_add "$VIF1" 52:54:00:00:01:01
run bm node vif attach n1 "$VIF1" || fail "vif attach"
agent_start "$NODE1" || fail "agent start"
run "$BASE/bin/ironic-dpu-agent" status --config-file "$BASE/agent-$NODE1/cli.conf" | jq -c '{node_uuid, driver, healthy, components}'

say "openstack baremetal node deploy: no PXE, no image written: the agent attaches the cloud disks and plugs the NIC
    (the deploy step pushes the state and polls the agent for up to [dpu_agent] inline_wait; converged, the deploy goes on
     in the same worker; still pending, the step returns 'wait call-back' and a periodic check resumes it)"
t0=$SECONDS
run bm node deploy n1 || fail deploy
wait_state "$NODE1" active 90 || fail "deploy did not reach active"
echo "node n1 is $(node_field "$NODE1" provision_state), power $(node_field "$NODE1" power_state), in $((SECONDS - t0))s"
line=$(grep -o "Node $NODE1: DPU agent converged generation [0-9]* in [0-9.]*s ([a-zA-Z ]*)" "$IRONIC_DIR"/log/ironic-conductor.log | tail -1)
[ -n "$line" ] || fail "the conductor did not see the agent converge"
echo "conductor: $line, then the step powered the host on"
th_wait 15 "VIF1 bound" vif_plugged "$NODE1" "$VIF1" || fail "VIF1 not bound"
show_state; show_ovn "$VIF1"

say "NIC hot-plug on the running host: vif attach of a second Neutron port, then vif detach"
ovn_lsp_add "$VIF2" 52:54:00:00:01:02
run bm node vif attach n1 "$VIF2" || fail "vif attach 2"
th_wait 15 "VIF2 bound" vif_plugged "$NODE1" "$VIF2" || fail "VIF2 not bound"
show_ovn "$VIF2"
run bm node vif detach n1 "$VIF2" || fail "vif detach"
th_wait 10 "VIF2 gone" vif_absent "$NODE1" "$VIF2" || fail "VIF2 not unplugged"
show_state

say "Disk hot-plug on the running host: a new data volume target, pushed with the driver's sync_state passthru"
add_data_target "$NODE1" "$DATA2_VOL" 2 || fail "data2 target"
run bm node passthru call --http-method POST n1 sync_state >/dev/null || fail sync_state
th_wait 15 "data2 attached" vol_attached "$NODE1" "$DATA2_VOL" || fail "data2 not attached"
show_state

say "The DPU agent restarts: it restores its persisted state and touches nothing that is already right"
before=$(vsctl --bare --columns=_uuid list Interface | sort | xargs)
agent_stop "$NODE1"; agent_start "$NODE1" || fail "agent restart"
sleep 2
after=$(vsctl --bare --columns=_uuid list Interface | sort | xargs)
[ "$before" = "$after" ] || fail "restart touched OVS rows"
echo "OVS Interface rows unchanged across the restart"
show_state

say "openstack baremetal node undeploy: volumes detached, NICs unplugged, node available again"
run bm node undeploy n1 || fail undeploy
wait_state "$NODE1" available 90 || fail "undeploy did not reach available"
show_state
echo "node n1 is $(node_field "$NODE1" provision_state)"
say "Demo complete"
