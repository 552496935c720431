package hwcheck_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/hwcheck"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

// fakeOVSDB answers one transact with the rows an ovsdb-server returns for
// br-int (two ports, a set) and ovsbr1 (one port, a bare uuid).
func fakeOVSDB(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "db.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			var req struct {
				ID     any    `json:"id"`
				Method string `json:"method"`
			}
			_ = json.NewDecoder(c).Decode(&req)
			res := []any{
				map[string]any{"rows": []any{
					map[string]any{"name": "br-int", "ports": []any{"set", []any{[]any{"uuid", "u1"}, []any{"uuid", "u2"}}}},
					map[string]any{"name": "ovsbr1", "ports": []any{"uuid", "u3"}},
				}},
				map[string]any{"rows": []any{
					map[string]any{"_uuid": []any{"uuid", "u1"}, "name": "br-int"},
					map[string]any{"_uuid": []any{"uuid", "u2"}, "name": "pf0vf0"},
					map[string]any{"_uuid": []any{"uuid", "u3"}, "name": "en3f0pf0sf0"},
				}},
			}
			_ = json.NewEncoder(c).Encode(map[string]any{"id": req.ID, "result": res, "error": nil})
			_ = c.Close()
		}
	}()
	return "unix:" + sock
}

func vf(pf, n int) *nodestate.Function { return &nodestate.Function{PF: pf, VF: nodestate.IntPtr(n)} }

// A whole dry run on a default BlueField: what is there, what a state would
// get, what would be refused, and nothing changed on SNAP, sysfs or devlink.
func TestCollectOnADefaultBlueField(t *testing.T) {
	emu := spdktest.StartT(t, spdktest.Options{SNAPPFs: 1, SNAPVFs: 4})
	if err := emu.EnableSRIOV(0, 2); err != nil {
		t.Fatal(err)
	}
	card, err := representortest.New(t.TempDir(), representortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := card.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	before := card.Reps()
	nl := sftest.NewNetlink(card)
	f := representor.Finder{Root: card.Root, Controller: bluefield.HostController}
	netw := bluefield.NewNetworkWith(f, &sf.Manager{NL: nl, Finder: f, Log: zap.NewNop()}, drivers.DefaultCard)
	client := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = client.Close() })
	st, err := bluefield.NewStorage(bluefield.StorageOptions{Client: client, NodeUUID: node})
	if err != nil {
		t.Fatal(err)
	}
	desired := &nodestate.Desired{NodeUUID: node,
		Volumes: []nodestate.Volume{
			{VolumeID: "v-boot"},                    // pf0: adopts SNAP's NVMeCtrl1
			{VolumeID: "v-vf", Function: vf(0, 1)},  // pf0vf1: a new controller
			{VolumeID: "v-bad", Function: vf(0, 3)}, // SR-IOV gave the host 2 VFs
		},
		VIFs: []nodestate.VIF{
			{PortID: "p-vf0", MAC: "fa:16:3e:00:00:01", Function: vf(0, 0)},                                            // on br-int already
			{PortID: "p-vf1", MAC: "fa:16:3e:00:00:02", Function: vf(0, 1)},                                            // would be plugged
			{PortID: "p-sf0", MAC: "fa:16:3e:00:00:03", Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)}}, // host SF 0, not en3f0pf0sf0
			{PortID: "p-vf5", MAC: "fa:16:3e:00:00:04", Function: vf(1, 5)},                                            // host has not enabled it
		},
	}
	emu.ResetCalls()
	r := hwcheck.Collect(context.Background(), hwcheck.Options{OVSDB: fakeOVSDB(t), Bridge: "br-int", Network: netw, Storage: st, Desired: desired})
	var out bytes.Buffer
	r.Print(&out)
	text := out.String()
	t.Log(text)
	for _, want := range []string{
		"snap version SPDK v24.09",
		"NVME function pf0: pci 3b:00.2",
		"controller " + spdktest.SNAPInitCtrl,
		"NVME function pf0vf1:",
		"host pf0: representor pf0hpf (pcipf)",
		"host pf0vf1: representor",
		"not for host VIFs: en3f0pf0sf0 (pcisf)",
		"bridge br-int (integration bridge): 2 ports",
		"uplink p0 is on no bridge",
		"volumes on pf0: adopt controller NVMeCtrl1",
		"volumes on pf0vf1: create subsystem",
		"vif p-vf0: pf0vf0 (pf0vf0) is already on br-int",
		"vif p-vf1: would plug",
		"vif p-sf0: would create host SF pf0sf0 (devlink pcisf pfnum 0 sfnum 0 controller 1",
		"vif p-vf5: pf1vf5 has no representor yet: waits until the host enables VF 5 on PF 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "pf0vf3: refused") {
		t.Errorf("problems = %q, want only pf0vf3 refused", r.Problems)
	}
	if emu.MutatingCalls() != 0 {
		t.Errorf("the dry run changed SNAP: %v", emu.CallCounts())
	}
	if len(nl.Calls()) != 0 || !slices.Equal(card.Reps(), before) {
		t.Errorf("the dry run changed the card: devlink %q", nl.Calls())
	}
}

// Whatever cannot be reached is a problem the operator sees, not an abort.
func TestCollectReportsWhatIsUnreachable(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := representor.Finder{Root: card.Root, Controller: bluefield.HostController}
	netw := bluefield.NewNetworkWith(f, &sf.Manager{NL: sftest.NewNetlink(card), Finder: f, Log: zap.NewNop()}, drivers.DefaultCard)
	client := spdk.NewUnix(filepath.Join(t.TempDir(), "none.sock"), nil)
	t.Cleanup(func() { _ = client.Close() })
	st, err := bluefield.NewStorage(bluefield.StorageOptions{Client: client, NodeUUID: node})
	if err != nil {
		t.Fatal(err)
	}
	r := hwcheck.Collect(context.Background(), hwcheck.Options{OVSDB: "unix:" + filepath.Join(t.TempDir(), "no.sock"), Bridge: "br-int", Network: netw, Storage: st})
	joined := strings.Join(r.Problems, "\n")
	if !strings.Contains(joined, "snap: ") || !strings.Contains(joined, "ovsdb unix:") || len(r.Network) == 0 {
		t.Fatalf("problems %q, representors %q", r.Problems, r.Network)
	}
	// Without a card at all, the representor part says so.
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "class", "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	g := representor.Finder{Root: empty, Controller: bluefield.HostController}
	r = hwcheck.Collect(context.Background(), hwcheck.Options{OVSDB: fakeOVSDB(t), Bridge: "br-x",
		Network: bluefield.NewNetworkWith(g, &sf.Manager{NL: sftest.NewNetlink(card), Finder: g, Log: zap.NewNop()}, drivers.DefaultCard)})
	joined = strings.Join(r.Problems, "\n")
	if !strings.Contains(joined, "no uplink") || !strings.Contains(joined, "integration bridge br-x does not exist") {
		t.Fatalf("problems %q", r.Problems)
	}
}
