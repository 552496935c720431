//go:build functional

package network_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	sfm "github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// The BlueField driver (fake sysfs + fake devlink, real OVS/OVN): an SF is
// created through devlink with the VIF's MAC, its udev-style representor is
// plugged and bound, and unplug deletes the SF again. Only PFs the card has
// are accepted.
func TestBlueFieldDriverSFLifecycle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := sftest.MakeCard(root, 1); err != nil {
		t.Fatal(err)
	}
	nl := sftest.NewNetlink(root)
	f := representor.Finder{Root: root, Controller: bluefield.HostController}
	drv := bluefield.NewNetworkWith(f, &sfm.Manager{NL: nl, Finder: f, Controller: bluefield.HostController, Log: zap.NewNop()}, drivers.DefaultCard)
	h := newReconciler(t, env, uuidN('a'), drv)

	v := nodestate.VIF{PortID: uuidN('b'), MAC: macN(0x600), Function: sf(0, 5)}
	addLSP(t, env, "ls-bf", v.PortID, v.MAC, "10.6.0.1")
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	if st := h.observe()[v.PortID]; st.State != nodestate.StatePlugged || st.Representor != "en3f0pf0sf5" {
		t.Fatalf("status = %+v", st)
	}
	ports := nl.Ports()
	if len(ports) != 1 || ports[0].Fn.HwAddr.String() != v.MAC || ports[0].Fn.State != 1 {
		t.Fatalf("devlink ports = %+v", ports)
	}
	if got := ifaceExtID(t, env, "en3f0pf0sf5", "ironic-dpu-function"); got != "pf0sf5" {
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
	if len(nl.Ports()) != 0 {
		t.Errorf("SF not deleted on unplug: %+v", nl.Ports())
	}
	if out, _ := env.Vsctl(ctx, "list-ports", env.Bridge); strings.Contains(out, "en3f0pf0sf5") {
		t.Errorf("port left: %q", out)
	}
}
