package daemon

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// The bluefield driver reads host functions on the external controller
// (never the DPU's own pf0sf0/pf0vf0); spdk-generic reads a switchdev NIC
// inside the host, whose functions are controller-less.
func TestDriverNetworkNaming(t *testing.T) {
	ctx := context.Background()
	client := spdk.NewUnix("/nonexistent", nil)
	bf, err := representortest.New(t.TempDir(), representortest.Options{PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := bf.AddRep(representortest.Rep{Netdev: "pf0vf0", PortName: "pf0vf0"}); err != nil { // the DPU's own VF
		t.Fatal(err)
	}
	nic, err := representortest.New(t.TempDir(), representortest.Options{Layout: representortest.SwitchdevNIC, PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := nic.EnableVFs(0, 1); err != nil {
		t.Fatal(err)
	}
	vf0 := nodestate.Function{PF: 0, VF: nodestate.IntPtr(0)}
	sf0 := nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)}

	cfg := config.Defaults()
	cfg.Default.NodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	cfg.DPU.Driver, cfg.OVS.SysfsRoot = "bluefield", bf.Root
	drv, err := buildDriver(cfg, client, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []nodestate.Function{vf0, sf0} {
		if got, err := drv.Network.Representor(ctx, fn); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("bluefield %s = %q, %v; want ErrNotFound (the DPU's own)", fn, got, err)
		}
	}
	if got, err := drv.Network.Representor(ctx, nodestate.Function{PF: 0}); err != nil || got != "pf0hpf" {
		t.Errorf("bluefield pf0 = %q, %v", got, err)
	}

	cfg.DPU.Driver, cfg.OVS.SysfsRoot = "spdk-generic", nic.Root
	cfg.NVMf.VFIOUserDir = t.TempDir()
	drv, err = buildDriver(cfg, client, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := drv.Network.Representor(ctx, vf0); err != nil || got != "pf0vf0" {
		t.Errorf("spdk-generic vf0 = %q, %v", got, err)
	}
}
