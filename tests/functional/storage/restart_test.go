//go:build functional

package storage_test

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// healthInterval is far longer than the test waits, so only the reconnect
// event (not a failed health probe, not the periodic reconcile) can bring the
// disks back in time.
const healthInterval = "30s"

// startAgentProc runs the real agent binary on the emulator's socket with d
// persisted as its desired state. The broker and OVSDB are absent: storage
// does not need them.
func startAgentProc(t *testing.T, sock string, d *state.Desired, extra map[string]map[string]string) *agentproc.Proc {
	t.Helper()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	store, err := state.NewStore(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(d); err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string]string{
		"DEFAULT": {"transport_url": "rabbit://guest:guest@127.0.0.1:1/", "node_uuid": nodeUUID, "state_dir": stateDir,
			"reconcile_interval": "120s", "health_interval": healthInterval},
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
	cfg := filepath.Join(dir, "agent.conf")
	if err := agentproc.WriteConfig(cfg, sections); err != nil {
		t.Fatal(err)
	}
	p, err := agentproc.Start(agentBin, cfg, filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("agent log:\n%s", p.Log())
		}
	})
	return p
}

// waitNamespaces polls pf0 until it holds want or the bound passes, and
// returns how long it took.
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
		took := waitNamespaces(t, cl, want, 5*time.Second)
		t.Logf("restart %d (%v): host disks back %v after SPDK answered again", i+1, sig, took)
	}
}
