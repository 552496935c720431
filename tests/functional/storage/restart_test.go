//go:build functional

package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// healthInterval and the default reconcile_interval are far longer than
// restoreWatchdog, so only the reconnect event (not a failed health probe,
// not the periodic reconcile) can bring the disks back within it.
const (
	healthInterval  = "1h"
	restoreWatchdog = time.Minute
)

// startAgentProc runs the real agent binary on the emulator's socket with d
// persisted as its desired state. The broker and OVSDB are absent: storage
// does not need them.
func startAgentProc(t *testing.T, sock string, d *nodestate.Desired, extra map[string]map[string]string) *agentproc.Proc {
	t.Helper()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	store, err := state.NewStore(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(d, nil); err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string]string{
		"DEFAULT": {"transport_url": "rabbit://guest:guest@127.0.0.1:1/", "node_uuid": nodeUUID, "state_dir": stateDir,
			"reconcile_interval": "1h", "health_interval": healthInterval},
		"dpu":     {"driver": "sim"},
		"spdk":    {"rpc_socket": sock, "rpc_timeout": "5s"},
		"ovs":     {"ovsdb_connection": "unix:" + filepath.Join(dir, "no-ovsdb.sock")},
		"storage": {"host_nqn": hostNQN, "ctrlr_loss_timeout_sec": "-1", "reconnect_delay_sec": "5"},
	}
	for sec, kv := range extra {
		if sections[sec] == nil {
			sections[sec] = map[string]string{}
		}
		for k, v := range kv {
			sections[sec][k] = v
		}
	}
	return agentproc.StartT(t, agentBin, sections)
}

// waitNamespaces polls pf0 until it holds want and returns how long it took
// (to log: bound is a watchdog, not a performance bound).
func waitNamespaces(t *testing.T, c *spdk.Client, want map[int]string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := namespaces(t, c)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			t.Fatalf("pf0 namespaces after %v = %v, want %v", bound, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SPDK crashes and is back before the agent's next health probe: the agent
// must notice the lost connection and rebuild the host's disks at once.
func TestAgentReconcilesAfterQuickSPDKRestart(t *testing.T) {
	emu := startEmu(t)
	cl := spdk.NewUnix(emu.sock, nil)
	cl.SetCallTimeout(5 * time.Second)
	t.Cleanup(func() { _ = cl.Close() })
	startAgentProc(t, emu.sock, volumes(), nil)
	want := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1"}
	waitNamespaces(t, cl, want, 30*time.Second)

	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		emu.stop(sig)
		emu.start() // returns once the new process accepts connections
		took := waitNamespaces(t, cl, want, restoreWatchdog)
		t.Logf("restart %d (%v): host disks back %v after SPDK answered again", i+1, sig, took)
	}
}

// A Cinder target that stays away longer than ctrlr_loss_timeout_sec makes
// SPDK delete the controller, its bdev and the host's namespace for good; the
// agent must re-attach the volume at its remembered nsid once the target is
// back (the periodic reconcile does it, every second here).
func TestAgentReattachesAfterControllerLoss(t *testing.T) {
	emu := startEmu(t)
	cl := spdk.NewUnix(emu.sock, nil)
	cl.SetCallTimeout(5 * time.Second)
	t.Cleanup(func() { _ = cl.Close() })
	startAgentProc(t, emu.sock, volumes(), map[string]map[string]string{
		"DEFAULT": {"reconcile_interval": "1s"},
		"storage": {"ctrlr_loss_timeout_sec": "2", "reconnect_delay_sec": "1"},
	})
	want := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1"}
	waitNamespaces(t, cl, want, 30*time.Second)

	target := spdktest.CinderVolume(data1ID, hostNQN, "4420")
	ctx := context.Background()
	if err := cl.Call(ctx, "spdktest_remove_remote", map[string]string{"nqn": target.NQN}, nil); err != nil {
		t.Fatal(err)
	}
	gone := map[int]string{1: want[1], 3: want[3]}
	took := waitNamespaces(t, cl, gone, restoreWatchdog)
	if _, err := cl.GetControllers(ctx, "idpu-"+data1ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("controller after ctrlr_loss_timeout_sec: %v", err)
	}
	t.Logf("controller, bdev and nsid 2 deleted %v after the target went", took)

	if err := cl.Call(ctx, "spdktest_add_remote", target, nil); err != nil {
		t.Fatal(err)
	}
	took = waitNamespaces(t, cl, want, restoreWatchdog)
	t.Logf("volume re-attached at nsid 2 %v after the target came back", took)
}

// pf0Listening reports whether pf0 has a VFIOUSER listener on dir/pf0.
func pf0Listening(t *testing.T, c *spdk.Client, dir string) bool {
	t.Helper()
	subs, err := c.GetSubsystems(context.Background(), drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0}))
	if errors.Is(err, errdefs.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range subs[0].ListenAddresses {
		if l.Trtype == "VFIOUSER" && l.Traddr == filepath.Join(dir, "pf0") {
			return true
		}
	}
	return false
}

// SPDK killed with SIGKILL leaves pf0's vfio-user socket behind; the real
// agent (spdk-generic, VFIOUSER) must remove it and give the host its
// controller back, not retry a failing add_listener for ever.
func TestAgentVFIOUserListenerAfterSPDKCrash(t *testing.T) {
	emu := startEmu(t)
	cl := spdk.NewUnix(emu.sock, nil)
	cl.SetCallTimeout(5 * time.Second)
	t.Cleanup(func() { _ = cl.Close() })
	vfio := filepath.Join(t.TempDir(), "vfio-user")
	p := startAgentProc(t, emu.sock, volumes(), map[string]map[string]string{
		"dpu":       {"driver": "spdk-generic"},
		"spdk_nvmf": {"transport": "VFIOUSER", "vfio_user_dir": vfio},
	})
	want := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1"}
	waitNamespaces(t, cl, want, 30*time.Second)
	// The listener comes after the namespaces (Activate): wait for it too.
	poll.Until(t, restoreWatchdog, 20*time.Millisecond, "pf0's VFIOUSER listener", func() bool { return pf0Listening(t, cl, vfio) })
	emu.kill()
	if _, err := os.Lstat(filepath.Join(vfio, "pf0", "cntrl")); err != nil {
		t.Fatalf("SIGKILL should leave cntrl behind: %v", err)
	}
	emu.start()
	took := waitNamespaces(t, cl, want, restoreWatchdog)
	deadline := time.Now().Add(restoreWatchdog)
	for !pf0Listening(t, cl, vfio) {
		if time.Now().After(deadline) {
			t.Fatalf("pf0 listener not back after the crash; agent log:\n%s", p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("host disks back %v after SPDK answered again", took)
	if !strings.Contains(p.Log(), "removed a stale vfio-user socket") {
		t.Fatal("the agent did not report the stale socket it removed")
	}
}
