//go:build functional

package storage_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// snapHost is what the emulated host sees on SNAP's functions.
func snapHost(t *testing.T, c *spdk.Client) string {
	t.Helper()
	var hs []spdktest.SNAPHostFunction
	if err := c.Call(context.Background(), "spdktest_snap_host", nil, &hs); err != nil {
		return "unreachable: " + err.Error()
	}
	out := ""
	for _, h := range hs {
		out += fmt.Sprintf("pf%d %s@%s running=%v %v;", h.PF, h.CtrlID, h.NQN, h.Running, h.NSIDs)
	}
	return out
}

func waitSNAPHost(t *testing.T, c *spdk.Client, want string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := snapHost(t, c)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			t.Fatalf("SNAP host after %v: %q, want %q", bound, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The agent binary with [dpu] driver = bluefield against the SNAP emulator
// process, which starts with NVIDIA's published init configuration: the
// volumes go into the pre-created NVMeCtrl1 on PF 0 (adopted, never
// re-created), and come back, resumed, after SNAP is killed or stopped and
// restarted.
func TestAgentBlueFieldSNAP(t *testing.T) {
	emu := startEmu(t)
	cl := spdk.NewUnix(emu.sock, nil)
	cl.SetCallTimeout(5 * time.Second)
	t.Cleanup(func() { _ = cl.Close() })
	startAgentProc(t, emu.sock, volumes(), map[string]map[string]string{
		"dpu": {"driver": "bluefield"},
		"ovs": {"sysfs_root": t.TempDir()},
	})
	want := fmt.Sprintf("pf0 %s@%s running=true [1 2 3];", spdktest.SNAPInitCtrl, spdktest.SNAPInitNQN)
	waitSNAPHost(t, cl, want, 30*time.Second)
	var counts map[string]int
	if err := cl.Call(context.Background(), "spdktest_get_call_counts", nil, &counts); err != nil {
		t.Fatal(err)
	}
	if counts["nvme_subsystem_create"]+counts["nvme_controller_create"] != 0 {
		t.Fatalf("created beside NVMeCtrl1: %v", counts)
	}
	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		emu.stop(sig)
		emu.start()
		took := waitSNAPHost(t, cl, want, restoreWatchdog) // within it, only the reconnect event can (see healthInterval)
		t.Logf("SNAP restart %d (%v): host disks back %v after SNAP answered again", i+1, sig, took)
	}
}
