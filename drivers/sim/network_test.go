package sim_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

var _ drivers.NetworkDriver = (*sim.Network)(nil)

// The observed VIF state reports the host function's MAC through it.
var _ network.MACReader = (*sim.Network)(nil)

func TestSimNetwork(t *testing.T) {
	ctx := context.Background()
	n := sim.NewNetwork(0)
	vf := nodestate.Function{PF: 0, VF: nodestate.IntPtr(3)}
	if got, err := n.Representor(ctx, vf); err != nil || got != "pf0vf3" {
		t.Fatalf("vf3 = %q, %v", got, err)
	}
	if got, err := n.Representor(ctx, nodestate.Function{PF: 1}); err != nil || got != "pf1hpf" {
		t.Fatalf("pf1 = %q, %v", got, err)
	}
	sf := nodestate.Function{PF: 0, SF: nodestate.IntPtr(88)}
	if _, err := n.Representor(ctx, sf); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("sf before Prepare: %v", err)
	}
	if got, err := n.Prepare(ctx, sf, "fa:16:3e:00:00:88"); err != nil || got != "pf0sf88" {
		t.Fatalf("Prepare = %q, %v", got, err)
	}
	if m := n.SFs(); m["pf0sf88"] != "fa:16:3e:00:00:88" || len(m) != 1 {
		t.Fatalf("SFs = %v", m)
	}
	if err := n.Release(ctx, sf); err != nil || len(n.SFs()) != 0 {
		t.Fatalf("Release: %v, left %v", err, n.SFs())
	}
	for _, bad := range []nodestate.Function{{PF: 2, SF: nodestate.IntPtr(1)}, {PF: 0, VF: nodestate.IntPtr(-1)}, {PF: 0, SF: nodestate.IntPtr(1 << 20)}} {
		if _, err := n.Prepare(ctx, bad, "fa:16:3e:00:00:01"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Prepare(%+v) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	if len(n.SFs()) != 0 {
		t.Fatalf("invalid Prepare created SFs: %v", n.SFs())
	}
}

// The sim gives a VF or SF the VIF's MAC as a BlueField does and reads it
// back (the host-side MAC the agent reports); a host PF's is not its own.
func TestSimFunctionMAC(t *testing.T) {
	ctx := context.Background()
	n := sim.NewNetwork(0)
	vf := nodestate.Function{PF: 0, VF: nodestate.IntPtr(2)}
	if mac, err := n.FunctionMAC(ctx, vf); err != nil || mac != "" {
		t.Fatalf("vf2 before Prepare = %q, %v, want no MAC", mac, err)
	}
	if _, err := n.Prepare(ctx, vf, "FA:16:3E:00:00:02"); err != nil {
		t.Fatal(err)
	}
	if mac, err := n.FunctionMAC(ctx, vf); err != nil || mac != "fa:16:3e:00:00:02" {
		t.Fatalf("vf2 = %q, %v", mac, err)
	}
	sf := nodestate.Function{PF: 1, SF: nodestate.IntPtr(7)}
	if _, err := n.FunctionMAC(ctx, sf); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("sf before Prepare: %v, want ErrNotFound", err)
	}
	if _, err := n.Prepare(ctx, sf, "fa:16:3e:00:00:07"); err != nil {
		t.Fatal(err)
	}
	if mac, err := n.FunctionMAC(ctx, sf); err != nil || mac != "fa:16:3e:00:00:07" {
		t.Fatalf("sf = %q, %v", mac, err)
	}
	pf := nodestate.Function{PF: 0}
	if _, err := n.Prepare(ctx, pf, "fa:16:3e:00:00:09"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.FunctionMAC(ctx, pf); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("host PF: %v, want ErrNotSupported", err)
	}
	if _, err := n.Prepare(ctx, vf, "not-a-mac"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad MAC: %v", err)
	}
	if mac, _ := n.FunctionMAC(ctx, vf); mac != "fa:16:3e:00:00:02" {
		t.Fatalf("a refused Prepare changed the VF's MAC to %q", mac)
	}
}
