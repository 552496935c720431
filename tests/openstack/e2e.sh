#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# Whole-OpenStack end-to-end suite: the user's own `openstack` commands on a
# private OpenStack Zed behind Keystone (Nova + ironic driver, Neutron ML2/OVN, Cinder
# SPDK/NVMe-TCP, Glance, Placement, Ironic with the project's dpu hardware
# type) and the real Go agent (sim driver) on the "DPU" chassis. Every flow is
# asserted from OpenStack's own APIs and from OVN / OVS / SPDK state.
# Usage: tests/openstack/e2e.sh      (OS_KEEP=1 keeps the temp dir and logs,
# OS_CASES="0 18" runs only those cases)
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=flows.sh
. "$HERE/flows.sh"

PASSED=0; FAILED=0; FAILURES=()
# OS_CASES="0 18" (debugging) runs only the cases whose number is listed;
# later cases may depend on earlier ones.
run_case() {   # run_case NAME FUNCTION
  local name=$1 t0; t0=$(os_now)
  if [ -n "${OS_CASES:-}" ] && ! grep -qw -- "${name%% *}" <<<"$OS_CASES"; then return 0; fi
  os_log "=== $name"
  if "$2"; then PASSED=$((PASSED + 1)); os_log "PASS $name ($(os_since "$t0")s)"
  else FAILED=$((FAILED + 1)); FAILURES+=("$name"); os_log "FAIL $name ($(os_since "$t0")s)"; fi
}

SUMMARY_DONE=0
summary() { SUMMARY_DONE=1; echo "$PASSED passed, $FAILED failed"; }
# On an early exit (os_die: a missing binary, a daemon that died) the trap
# still stops everything and prints the summary line, as a failure.
on_exit() {
  local rc=$?
  [ "$SUMMARY_DONE" = 1 ] || FAILED=$((FAILED + 1))
  cleanup
  if [ "$SUMMARY_DONE" = 0 ]; then summary; exit 1; fi
  exit "$rc"
}

cleanup() {
  set +e
  [ -n "${BASE:-}" ] || return 0
  # OS_KEEP_UP=1 leaves the cloud running for debugging (os_attach BASE).
  if [ "${OS_KEEP_UP:-0}" = 1 ]; then os_log "stack left running in $BASE"; return 0; fi
  stack_down
  if [ "${OS_KEEP:-0}" = 1 ] || [ "$FAILED" -gt 0 ]; then os_log "logs kept in $BASE"; else rm -rf "$BASE"; fi
  BASE=""
}

main() {
  trap on_exit EXIT
  if ! stack_up; then
    FAILED=$((FAILED + 1)); os_log "stack-up failed"
  else
    run_case "0 setup: net01, image, flavor; dpu node enrolled and schedulable; agent up" case_setup
    if [ "$FAILED" -eq 0 ]; then
      run_case "0b Keystone: every API 401 without a valid token; the tenant (member) neither sees nor enrolls nodes, nor creates flavors" case_keystone
      run_case "1 server create --image --network net01: ACTIVE; agent plugs the port, OVN binds it on the DPU, ACTIVE" case_network_boot
      run_case "7 config drive: Nova's ISO under config_drive_dir, PF0 namespace (read-only AIO), label config-2, user data + key; Ironic keeps the sha256 only" case_config_drive
      run_case "3a server add port (with a security group): hot-plugged and bound, first port untouched" case_port_add
      run_case "4 the port's security group is an OVN port group with ACLs (NB + SB logical flows)" case_security_group
      run_case "3b server remove port: unplugged and unbound, first port untouched" case_port_remove
      run_case "6 bare-metal port reaches a VM port on net01: same switch, ovn-trace output (spoofed MAC dropped)" case_trace_to_vm
      run_case "8 QoS + server add volume: front-end QoS type, attached on the DPU as a PF0 namespace, rate limits on the DPU bdev" case_volume_add_qos
      run_case "9 volume extend (in-use, 3.42): Cinder, Nova event, agent and the DPU bdev at 2 GiB, same nsid" case_volume_extend
      run_case "14 service users: the tenant's requests ran as the tenant; Nova's driver, Ironic's dpu interfaces, Cinder called the next service as their own Keystone users" case_service_users
      run_case "10 reboot --hard, stop/start, rebuild: same OVS Interface row, same nsid and QoS, config drive" case_lifecycle
      run_case "11 server remove volume: namespace, bdev, controller, Ironic target gone; volume available" case_volume_remove
      run_case "12a server add volume with a malformed QoS value: refused, the agent's reason in the instance action event" case_bad_qos_attach
      run_case "5a server delete (network boot): port unplugged, LSP gone, node available" case_delete_network_boot
      run_case "2 volume create --image; server create --volume + two data disks (boot_index=-1): ACTIVE, nsids 1, 2, 3 on the DPU from Cinder's target" case_boot_from_volume
      run_case "5b server delete (boot from volume): volume available, detached on DPU and target, unplugged, node available" case_delete
      run_case "12b server create --volume with a malformed QoS value: ERROR, the agent's reason in the server's fault" case_bad_qos_boot
      run_case "13 the deleted server's config drive image is removed from config_drive_dir" case_config_drive_file_gone
      run_case "16 server migrate + resize confirm (boot volume, data disk, port): VERIFY_RESIZE then ACTIVE on the other node, same volumes at the same nsids and same port (MAC, IP) on its DPU, Cinder attachments with its host NQN; the old node and DPU released, no allocation left" case_migrate
      run_case "16b server resize --flavor bm.large + resize revert: on the other node with bm.large, then back with bm.small, the other node released" case_resize_revert
      run_case "16c server resize --flavor bm.large + resize confirm, then server delete: both nodes and DPUs released, volumes available" case_resize_confirm
      run_case "16d server migrate of a server booted from an image: refused before any change (the reason in the instance action), still ACTIVE on its node, port wired" case_migrate_image_refused
      run_case "18 server image create (volume-backed): the DPU quiesces the host around the Cinder snapshot; a server booted from the image on node 2 gets a clone" case_snapshot
      run_case "15 shelve, then unshelve onto the other node: same volumes at the same nsids with its host NQN, same port and IP bound on its DPU's chassis; the first node and DPU released" case_shelve_unshelve
      run_case "17 evacuate from a failed node (maintenance, compute down): its DPU and the target fenced before the new DPU attaches; the returning compute leaves the server alone" case_evacuate
      run_case "19 nova-compute never logged a vnic_type change of a bound port (the binding keeps vnic_type normal)" case_no_vnic_type_flip
      run_case "20 ironic-conductor leaves no idle connections to Neutron behind (they filled Neutron's worker pool: bindings hung)" case_no_idle_neutron_connections
    fi
  fi
  [ ${#FAILURES[@]} -eq 0 ] || os_log "failed: ${FAILURES[*]}"
  cleanup; trap - EXIT
  summary
  [ "$FAILED" -eq 0 ]
}
main "$@"
