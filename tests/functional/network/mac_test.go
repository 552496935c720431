//go:build functional

package network_test

import (
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// The host function carries the VIF's (Neutron port's) MAC and the observed
// state shows it as the driver reads it: for a VF and an SF; not for a host
// PF (not the DPU's to set). A restarted agent whose card lost the VF's MAC
// (a fresh sim driver) gives it again without an OVSDB write; a new MAC is
// given on the re-plug.
func TestHostFunctionCarriesTheVIFMAC(t *testing.T) {
	node := uuidN('a')
	vifs := []nodestate.VIF{
		{PortID: uuidN('d'), MAC: macN(0x600), Function: vf(0, 60)},
		{PortID: uuidN('d'), MAC: macN(0x601), Function: sf(1, 60)},
		{PortID: uuidN('d'), MAC: macN(0x602), Function: &nodestate.Function{PF: 1}},
	}
	for i, v := range vifs {
		addLSP(t, env, "ls-mac", v.PortID, v.MAC, "10.6.0.1"+string(rune('0'+i)))
	}
	check := func(h *harness, what string, want ...string) {
		t.Helper()
		obs := h.observe()
		for i, v := range vifs {
			if st := obs[v.PortID]; st.State != nodestate.StatePlugged || st.MAC != want[i] {
				t.Errorf("%s: vif %d (%s) = %+v, want plugged with host MAC %q", what, i, v.Function, st, want[i])
			}
		}
	}

	h1 := newReconciler(t, env, node, sim.NewNetwork(0))
	if err := h1.reconcile(vifs...); err != nil {
		t.Fatal(err)
	}
	check(h1, "first plug", vifs[0].MAC, vifs[1].MAC, "")
	h1.stop()

	drv := sim.NewNetwork(0)
	h2 := newReconcilerTimeout(t, env, node, drv, 5*time.Second)
	if err := h2.reconcile(vifs...); err != nil {
		t.Fatal(err)
	}
	if n := h2.r.Transactions(); n != 0 {
		t.Errorf("giving the MACs again sent %d OVSDB transactions", n)
	}
	check(h2, "after a restart", vifs[0].MAC, vifs[1].MAC, "")

	vifs[0].MAC = macN(0x6a0)
	if err := h2.reconcile(vifs...); err != nil {
		t.Fatal(err)
	}
	check(h2, "new MAC", macN(0x6a0), vifs[1].MAC, "")
	if got := ifaceExtID(t, env, "pf0vf60", "attached-mac"); got != macN(0x6a0) {
		t.Errorf("attached-mac = %q, want %q", got, macN(0x6a0))
	}
	if err := h2.reconcile(); err != nil {
		t.Fatal(err)
	}
}
