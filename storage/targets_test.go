package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// TestConnectionInfoIsParsedOnce: admission (Validate) parses a volume's
// connection info; planning reconciles of the same state, also after the
// agent's JSON clone of it, parses nothing; new data is parsed again, and
// bad data is refused before any plan.
func TestConnectionInfoIsParsedOnce(t *testing.T) {
	const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	const vol = "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f"
	cl := spdk.NewUnix(filepath.Join(t.TempDir(), "none.sock"), nil) // never dialled
	drv, err := sim.NewStorage(cl, node, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Client: cl, Driver: drv, NodeUUID: node, Storage: Settings{
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5, Multipath: "multipath"}})
	if err != nil {
		t.Fatal(err)
	}
	parses := 0
	r.targets.parse = func(d map[string]any) (nvmeof.Target, error) {
		parses++
		return nvmeof.Parse(d)
	}
	d := &nodestate.Desired{Generation: 1, NodeUUID: node, VIFs: []nodestate.VIF{}, Volumes: []nodestate.Volume{{
		VolumeID: vol, ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
			"target_nqn": "nqn.2010-10.org.openstack:volume-" + vol, "vol_uuid": vol,
			"portals": []any{[]any{"127.0.0.1", float64(4420), "tcp"}}}}}}}
	if err := r.Validate(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		items, err := r.plan(d.Clone(), false) // what each Reconcile starts with
		if err != nil || len(items) != 1 || items[0].target.Portals[0].Port != 4420 {
			t.Fatalf("plan = %+v, %v", items, err)
		}
	}
	if parses != 1 {
		t.Fatalf("connection info parsed %d times for one admission and three reconciles, want 1", parses)
	}

	d.Volumes[0].ConnectionInfo.Data["portals"] = []any{[]any{"127.0.0.1", float64(4421), "tcp"}}
	items, err := r.plan(d.Clone(), false)
	if err != nil || parses != 2 || items[0].target.Portals[0].Port != 4421 {
		t.Fatalf("changed data: items %+v, err %v, parses %d; want port 4421 after a second parse", items, err, parses)
	}

	d.Volumes[0].ConnectionInfo.Data["portals"] = []any{[]any{"127.0.0.1", float64(70000), "tcp"}}
	if err := r.Validate(context.Background(), d); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad port: %v, want ErrInvalidArgument", err)
	}
	if _, err := r.plan(d.Clone(), false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad port reached a plan: %v", err)
	}
}

// TestAttachPathParsesConnectionInfoOnce follows attach_volume from the RPC
// edge through the agent's admission to the storage reconcile it causes:
// each volume's connection info is parsed once (the agent itself knows no
// storage protocol; TestLayering in internal/layering keeps it so), a
// repeat and an attach of a second volume parse nothing already known, and
// bad connection info is refused at admission (InvalidParameterValue)
// before anything is persisted.
func TestAttachPathParsesConnectionInfoOnce(t *testing.T) {
	const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	const hostNQN = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
	const vol1, vol2 = "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f", "c0ffee00-1111-4222-8333-444455556666"
	emu := spdktest.StartT(t, spdktest.Options{Remotes: []spdktest.RemoteSubsystem{
		spdktest.CinderVolume(vol1, hostNQN, "4420"), spdktest.CinderVolume(vol2, hostNQN, "4420")}})
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	drv, err := sim.NewStorage(cl, node, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Client: cl, Driver: drv, NodeUUID: node, Storage: Settings{
		HostNQN: hostNQN, CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5, Multipath: "multipath"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // the reconcile loop and admission both parse
	parses := map[string]int{}
	r.targets.parse = func(d map[string]any) (nvmeof.Target, error) {
		mu.Lock()
		parses[fmt.Sprint(d["target_nqn"])]++
		mu.Unlock()
		return nvmeof.Parse(d)
	}
	count := func() map[string]int { mu.Lock(); defer mu.Unlock(); return maps.Clone(parses) }
	st, err := state.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{NodeUUID: node, DriverName: "sim", Store: st, Reconcilers: []agent.Reconciler{r}, SFBase: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	attach := func(data string) (nodestate.VolumeStatus, error) {
		var args map[string]json.RawMessage
		if err := json.Unmarshal([]byte(`{"volume":`+data+`}`), &args); err != nil {
			t.Fatal(err)
		}
		res, err := a.Methods()["attach_volume"](ctx, args)
		st, _ := res.(nodestate.VolumeStatus)
		return st, err
	}
	vol := func(id string, port int) string {
		return fmt.Sprintf(`{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"target_nqn":"nqn.2010-10.org.openstack:volume-%s","vol_uuid":%q,"portals":[["127.0.0.1",%d,"tcp"]]}}}`, id, id, id, port)
	}
	nqn := func(id string) string { return "nqn.2010-10.org.openstack:volume-" + id }

	if s, err := attach(vol(vol1, 4420)); err != nil || s.State != "attached" {
		t.Fatalf("attach %s: %+v, %v", vol1, s, err)
	}
	if s, err := attach(vol(vol1, 4420)); err != nil || s.State != "attached" { // idempotent repeat
		t.Fatalf("repeat attach %s: %+v, %v", vol1, s, err)
	}
	if s, err := attach(vol(vol2, 4420)); err != nil || s.State != "attached" {
		t.Fatalf("attach %s: %+v, %v", vol2, s, err)
	}
	if got := count(); got[nqn(vol1)] != 1 || got[nqn(vol2)] != 1 || len(got) != 2 {
		t.Fatalf("parses per target after three attaches and their reconciles: %v, want 1 each", got)
	}

	gen := a.Desired().Generation
	bad := map[string]string{
		"bad nqn":           `{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"nqn":"not-an-nqn","target_portal":"127.0.0.1","target_port":4420}}}`,
		"port zero":         `{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"nqn":"nqn.2010-10.org.openstack:v","target_portal":"127.0.0.1","target_port":0}}}`,
		"port too big":      `{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"target_nqn":"nqn.2010-10.org.openstack:v","portals":[["127.0.0.1",65536,"tcp"]]}}}`,
		"unknown transport": `{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"nqn":"nqn.2010-10.org.openstack:v","target_portal":"127.0.0.1","target_port":4420,"transport_type":"fc"}}}`,
		"missing target":    `{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"target_portal":"127.0.0.1","target_port":4420}}}`,
	}
	for name, b := range bad {
		_, err := attach(fmt.Sprintf(b, "0d0d0d0d-1111-4222-8333-444455556666"))
		if !errors.Is(err, errdefs.ErrInvalidArgument) || agent.ExceptionClass(err) != "InvalidParameterValue" {
			t.Errorf("%s: %v (class %s), want InvalidParameterValue", name, err, agent.ExceptionClass(err))
		}
	}
	if g := a.Desired().Generation; g != gen {
		t.Fatalf("refused attaches moved the generation %d -> %d", gen, g)
	}
}
