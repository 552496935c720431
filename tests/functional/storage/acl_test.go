//go:build functional

package storage_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

const metalHostNQN = "nqn.2014-08.org.nvmexpress:uuid:" + nodeUUID

// The real agent restricts the host-facing subsystem to allowed_host_nqns.
func TestAgentHostFacingACL(t *testing.T) {
	emu := startEmu(t)
	cl := spdk.NewUnix(emu.sock, nil)
	t.Cleanup(func() { _ = cl.Close() })
	startAgentProc(t, emu.sock, volumes(), map[string]map[string]string{"spdk_nvmf": {"allowed_host_nqns": metalHostNQN}})
	want := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1"}
	waitNamespaces(t, cl, want, 30*time.Second)
	subs, err := cl.GetSubsystems(context.Background(), drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0}))
	if err != nil {
		t.Fatal(err)
	}
	if subs[0].AllowAnyHost || len(subs[0].Hosts) != 1 || subs[0].Hosts[0].NQN != metalHostNQN {
		t.Fatalf("pf0 access: allow_any_host=%v hosts=%+v", subs[0].AllowAnyHost, subs[0].Hosts)
	}
}

// `check` (and serve) refuse a network-reachable TCP listener open to any host.
func TestCheckRefusesOpenTCPListener(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.conf")
	err := agentproc.WriteConfig(cfg, map[string]map[string]string{
		"DEFAULT":   {"node_uuid": nodeUUID, "state_dir": filepath.Join(dir, "state")},
		"dpu":       {"driver": "spdk-generic"},
		"spdk_nvmf": {"transport": "TCP", "listen_address": "0.0.0.0", "listen_port": "4420"},
		"spdk":      {"rpc_socket": filepath.Join(dir, "none.sock")},
		"ovs":       {"ovsdb_connection": "unix:" + filepath.Join(dir, "none.sock")},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(agentBin, "check", "--config-file", cfg, "--timeout", "2s").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "allowed_host_nqns") {
		t.Fatalf("check: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, agentBin, "serve", "--config-file", cfg).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "allowed_host_nqns") {
		t.Fatalf("serve started with an open TCP listener: %v\n%s", err, out)
	}
}
