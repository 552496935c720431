package storage

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
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
	r, err := New(Options{Client: cl, Driver: drv, NodeUUID: node, Storage: config.StorageOpts{
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
