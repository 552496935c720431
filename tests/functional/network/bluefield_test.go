//go:build functional

package network_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	sfm "github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// blueField is the BlueField driver over a fake default BlueField in DPU
// mode (representortest) with pfs PFs and a fake devlink.
func blueField(t *testing.T, pfs int) (*bluefield.Network, *sftest.Netlink) {
	t.Helper()
	card, err := representortest.New(t.TempDir(), representortest.Options{PFs: pfs})
	if err != nil {
		t.Fatal(err)
	}
	nl := sftest.NewNetlink(card)
	f := representor.Finder{Root: card.Root, Controller: bluefield.HostController}
	return bluefield.NewNetworkWith(f, &sfm.Manager{NL: nl, Finder: f, Log: zap.NewNop()}, drivers.DefaultCard), nl
}

// The BlueField driver (fake sysfs + fake devlink, real OVS/OVN): an SF is
// created through devlink with the VIF's MAC, its udev-style representor is
// plugged and bound, and unplug deletes the SF again. Only PFs the card has
// are accepted.
func TestBlueFieldDriverSFLifecycle(t *testing.T) {
	ctx := context.Background()
	drv, nl := blueField(t, 1)
	h := newReconciler(t, env, uuidN('a'), drv)

	v := nodestate.VIF{PortID: uuidN('b'), MAC: macN(0x600), Function: sf(0, 5)}
	addLSP(t, env, "ls-bf", v.PortID, v.MAC, "10.6.0.1")
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	if st := h.observe()[v.PortID]; st.State != nodestate.StatePlugged || st.Representor != "en3f0c1pf0sf5" {
		t.Fatalf("status = %+v", st)
	}
	ports := nl.Made()
	if len(ports) != 1 || ports[0].Fn.HwAddr.String() != v.MAC || ports[0].Fn.State != 1 {
		t.Fatalf("devlink ports = %+v", ports)
	}
	if got := ifaceExtID(t, env, "en3f0c1pf0sf5", "ironic-dpu-function"); got != "pf0sf5" {
		t.Errorf("ironic-dpu-function = %q", got)
	}
	// Nothing changed: no transaction and no devlink call.
	calls, txns := len(nl.Calls()), h.r.Transactions()
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	if len(nl.Calls()) != calls || h.r.Transactions() != txns {
		t.Errorf("unchanged reconcile made calls: devlink %v, txns %d", nl.Calls()[calls:], h.r.Transactions()-txns)
	}

	bad := nodestate.VIF{PortID: uuidN('b'), MAC: macN(0x601), Function: sf(1, 5)} // the card has PF 0 only
	if err := h.reconcile(v, bad); !isKind(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "PFs [0]") {
		t.Errorf("unknown PF: %v", err)
	}
	if len(nl.Calls()) != calls || h.r.Transactions() != txns {
		t.Errorf("invalid state made calls")
	}

	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(nl.Made()) != 0 {
		t.Errorf("SF not deleted on unplug: %+v", nl.Made())
	}
	if out, _ := env.Vsctl(ctx, "list-ports", env.Bridge); strings.Contains(out, "en3f0c1pf0sf5") {
		t.Errorf("port left: %q", out)
	}
}

// M4 end to end: on a default BlueField the DPU's own SF 0 (en3f0pf0sf0,
// phys_port_name pf0sf0) is in ovsbr1 (or in no bridge, if the operator
// removed it). A VIF with sf 0 gets a new host SF c1pf0sf0 made through
// devlink on controller 1 and plugged into br-int; en3f0pf0sf0 keeps its MAC
// and state, never reaches br-int, and survives the unplug.
func TestBlueFieldHostSF0IsNotTheDPUsSF0(t *testing.T) {
	for i, inOVSBr1 := range []bool{true, false} {
		t.Run(fmt.Sprintf("ovsbr1=%v", inOVSBr1), func(t *testing.T) {
			hostSF0(t, inOVSBr1, byte('c'+2*i))
		})
	}
}

func hostSF0(t *testing.T, inOVSBr1 bool, id byte) {
	ctx := context.Background()
	drv, nl := blueField(t, 1)
	dpuSF := representortest.DPUSF(0)
	before, ok := nl.Port(dpuSF)
	if !ok {
		t.Fatalf("card has no %s", dpuSF)
	}
	if inOVSBr1 {
		if _, err := env.Vsctl(ctx, "--may-exist", "add-br", "ovsbr1", "--", "--may-exist", "add-port", "ovsbr1", dpuSF); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = env.Vsctl(context.Background(), "--if-exists", "del-br", "ovsbr1") })
	}
	h := newReconciler(t, env, uuidN(id), drv)

	v := nodestate.VIF{PortID: uuidN(id + 1), MAC: macN(0x610 + int(id)), Function: sf(0, 0)}
	addLSP(t, env, "ls-bf0", v.PortID, v.MAC, fmt.Sprintf("10.6.1.%d", id))
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	if st := h.observe()[v.PortID]; st.State != nodestate.StatePlugged || st.Representor != "en3f0c1pf0sf0" {
		t.Fatalf("status = %+v, want plugged on the new host SF", st)
	}
	made := nl.Made()
	if len(made) != 1 || made[0].NetdeviceName != "en3f0c1pf0sf0" || made[0].Fn.HwAddr.String() != v.MAC {
		t.Fatalf("host SFs = %+v", made)
	}
	if c := nl.Calls(); !strings.Contains(c[0], "pfnum 0 sfnum 0 controller 1(valid=true)") {
		t.Errorf("devlink calls = %v", c)
	}
	if out, _ := env.Vsctl(ctx, "list-ports", env.Bridge); strings.Contains(out, dpuSF) {
		t.Errorf("%s plugged into %s: %q", dpuSF, env.Bridge, out)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(nl.Made()) != 0 {
		t.Errorf("host SF not deleted on unplug: %+v", nl.Made())
	}
	after, ok := nl.Port(dpuSF)
	if !ok || after.Fn.HwAddr.String() != before.Fn.HwAddr.String() || after.Fn.State != before.Fn.State || after.PortIndex != before.PortIndex {
		t.Errorf("%s changed: %+v -> %+v (present %v)", dpuSF, before.Fn, after, ok)
	}
	for _, c := range nl.Calls() {
		if strings.Contains(c, fmt.Sprintf("/%d ", before.PortIndex)) || strings.HasSuffix(c, fmt.Sprintf("/%d", before.PortIndex)) {
			t.Errorf("devlink call on the DPU's own SF: %q", c)
		}
	}
	if inOVSBr1 {
		if out, err := env.Vsctl(ctx, "port-to-br", dpuSF); err != nil || strings.TrimSpace(out) != "ovsbr1" {
			t.Errorf("%s is on %q (%v), want ovsbr1", dpuSF, out, err)
		}
	}
}
