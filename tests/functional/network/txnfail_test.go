//go:build functional

package network_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// racingPrepare is the sim card where, right after Prepare made the SF,
// someone else adds a port of the representor's name to another bridge, so
// the reconciler's plug transaction (planned on an older snapshot) fails.
type racingPrepare struct {
	*sim.Network
	t   *testing.T
	env *ovn.Env
	on  bool
}

func (c *racingPrepare) Prepare(ctx context.Context, f nodestate.Function, mac string) (string, error) {
	rep, err := c.Network.Prepare(ctx, f, mac)
	if c.on && err == nil {
		if _, verr := c.env.Vsctl(ctx, "--may-exist", "add-br", "br-race", "--", "add-port", "br-race", rep); verr != nil {
			c.t.Error(verr)
		}
	}
	return rep, err
}

// An SF made for a plug whose transaction then failed is released: nothing
// of this node in OVSDB names it, so an unplug could never find it again.
func TestFailedPlugTransactionReleasesNewSF(t *testing.T) {
	drv := &racingPrepare{Network: sim.NewNetwork(0), t: t, env: env, on: true}
	t.Cleanup(func() { _, _ = env.Vsctl(context.Background(), "--if-exists", "del-br", "br-race") })
	h := newReconciler(t, env, uuidN('a'), drv)
	port, mac := uuidN('b'), macN(0x600)
	v := nodestate.VIF{PortID: port, MAC: mac, Function: sf(0, 61)}
	if err := h.reconcile(v); !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("reconcile racing another port of that name = %v, want ErrNetwork", err)
	}
	drv.on = false
	if got := ifaceExtID(t, env, "pf0sf61", "iface-id"); got != "" {
		t.Fatalf("setup: the plug transaction went through (iface-id %q)", got)
	}
	if got := drv.SFs(); len(got) != 0 {
		t.Errorf("SF left behind by the failed plug: %v", got)
	}
	// The VIF goes away before any retry: nothing may remain.
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := drv.SFs(); len(got) != 0 {
		t.Errorf("SF leaked after the VIF was removed: %v", got)
	}
}
