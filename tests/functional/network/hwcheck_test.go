//go:build functional

package network_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// `ironic-dpu-agent check --hardware --state` as an operator runs it on a
// new DPU: the real binary against real OVS (a BlueField-like ovsbr1 with
// the DPU's own SF and uplink, br-int with one host VF already plugged), the
// SNAP emulator with NVIDIA's init configuration and a fake default
// BlueField sysfs. It reports what is there and what it would do, exits 16
// (plus 2: no broker here) for the one function SNAP does not emulate, and
// changes nothing: no SNAP mutation, same OVSDB, same sysfs.
func TestCheckHardwareDryRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin, err := agentproc.Build(dir, "ironic-dpu-agent")
	if err != nil {
		t.Fatal(err)
	}
	emu := spdktest.StartT(t, spdktest.Options{SNAPPFs: 1, SNAPVFs: 4})
	if err := emu.EnableSRIOV(0, 2); err != nil {
		t.Fatal(err)
	}
	card, err := representortest.New(filepath.Join(dir, "sys"), representortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := card.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	dpuSF := representortest.DPUSF(0)
	for _, args := range [][]string{
		{"--may-exist", "add-br", "ovsbr1", "--", "--may-exist", "add-port", "ovsbr1", "p0", "--", "--may-exist", "add-port", "ovsbr1", dpuSF},
		{"--may-exist", "add-port", env.Bridge, "pf0vf0"},
	} {
		if _, err := env.Vsctl(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = env.Vsctl(context.Background(), "--if-exists", "del-br", "ovsbr1", "--", "--if-exists", "del-port", env.Bridge, "pf0vf0")
	})
	node, vfPort, sfPort := uuidN('c'), uuidN('a'), uuidN('b')
	state := nodestate.Desired{NodeUUID: node,
		Volumes: []nodestate.Volume{
			{VolumeID: uuidN('1'), ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
				"target_nqn": "nqn.2016-06.io.spdk:" + uuidN('1'), "vol_uuid": uuidN('1'),
				"portals": []any{[]any{"127.0.0.1", "4420", "tcp"}}}}},
			{VolumeID: uuidN('2'), Function: &nodestate.Function{PF: 0, VF: nodestate.IntPtr(3)}, ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
				"target_nqn": "nqn.2016-06.io.spdk:" + uuidN('2'), "vol_uuid": uuidN('2'),
				"portals": []any{[]any{"127.0.0.1", "4420", "tcp"}}}}},
		},
		VIFs: []nodestate.VIF{
			{PortID: vfPort, MAC: macN(0x701), Function: &nodestate.Function{PF: 0, VF: nodestate.IntPtr(0)}},
			{PortID: sfPort, MAC: macN(0x702), Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)}},
		},
	}
	stateFile := filepath.Join(dir, "state.json")
	b, _ := json.Marshal(state)
	if err := os.WriteFile(stateFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.conf")
	if err := agentproc.WriteConfig(cfg, map[string]map[string]string{
		"DEFAULT": {"node_uuid": node, "transport_url": "rabbit://u:secret@127.0.0.1:1/", "state_dir": dir},
		"dpu":     {"driver": "bluefield"},
		"spdk":    {"rpc_socket": emu.Socket()},
		"ovs":     {"ovsdb_connection": env.OVSDB, "sysfs_root": card.Root, "integration_bridge": env.Bridge},
	}); err != nil {
		t.Fatal(err)
	}
	ovsBefore, _ := env.Vsctl(ctx, "show")
	sysBefore := card.Reps()
	emu.ResetCalls()

	cmd := exec.Command(bin, "check", "--hardware", "--state", stateFile, "--config-file", cfg, "--timeout", "5s")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Log(stderr.String())
	text := string(out)
	t.Log(text)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2+16 {
		t.Fatalf("exit %v, want 18 (broker down + one hardware problem)", err)
	}
	for _, want := range []string{
		"snap version SPDK v24.09",
		"NVME function pf0: pci 3b:00.2",
		"host pf0vf1: representor pf0vf1 (pcivf)",
		"not for host VIFs: " + dpuSF + " (pcisf)",
		"bridge br-int (integration bridge): 2 ports",
		"bridge ovsbr1: 3 ports",
		"uplink p0 is on bridge ovsbr1",
		"volumes on pf0: adopt controller " + spdktest.SNAPInitCtrl,
		"vif " + vfPort + ": pf0vf0 (pf0vf0) is already on br-int",
		"vif " + sfPort + ": would create host SF pf0sf0",
		"PROBLEMS:",
		"volumes on pf0vf3: refused",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(text, "secret") {
		t.Error("check printed the broker password")
	}
	if emu.MutatingCalls() != 0 {
		t.Errorf("check --hardware changed SNAP: %v", emu.CallCounts())
	}
	if after, _ := env.Vsctl(ctx, "show"); after != ovsBefore {
		t.Errorf("check --hardware changed OVS:\n%s\nvs\n%s", ovsBefore, after)
	}
	if !slices.Equal(card.Reps(), sysBefore) {
		t.Error("check --hardware changed sysfs")
	}
}
