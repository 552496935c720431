package sf_test

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func setup(t *testing.T, o representortest.Options) (*sf.Manager, *sftest.Netlink) {
	t.Helper()
	card, err := representortest.New(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	fake := sftest.NewNetlink(card)
	f := representor.Finder{Root: card.Root, Controller: representortest.HostController, Local: o.Layout == representortest.SwitchdevNIC}
	return &sf.Manager{NL: fake, Finder: f, Log: zap.NewNop()}, fake
}

func TestCreateDeleteLifecycle(t *testing.T) {
	ctx := context.Background()
	m, fake := setup(t, representortest.Options{})
	rep, err := m.Create(ctx, 1, 88, "fa:16:3e:00:00:88")
	if err != nil || rep != "en3f1c1pf1sf88" {
		t.Fatalf("Create = %q, %v", rep, err)
	}
	ps := fake.Made()
	if len(ps) != 1 || ps[0].DeviceName != "0000:03:00.1" || ps[0].Fn.HwAddr.String() != "fa:16:3e:00:00:88" || ps[0].Fn.State != 1 {
		t.Fatalf("ports after create: %+v", ps)
	}
	if c := fake.Calls(); !strings.Contains(c[0], "add pci/0000:03:00.1 flavour 7 pfnum 1 sfnum 88 controller 1(valid=true)") {
		t.Errorf("first call %q", c[0])
	}
	// The representor is now visible through sysfs.
	if got, err := m.Finder.Lookup(nodestate.Function{PF: 1, SF: nodestate.IntPtr(88)}); err != nil || got != rep {
		t.Errorf("Lookup after create = %q, %v", got, err)
	}
	// Idempotent: a second Create adds no port, only re-sets the MAC.
	if rep2, err := m.Create(ctx, 1, 88, "fa:16:3e:00:00:99"); err != nil || rep2 != rep {
		t.Fatalf("second Create = %q, %v", rep2, err)
	}
	if ps := fake.Made(); len(ps) != 1 || ps[0].Fn.HwAddr.String() != "fa:16:3e:00:00:99" {
		t.Fatalf("after second create: %+v", ps)
	}
	if err := m.Delete(ctx, 1, 88); err != nil {
		t.Fatal(err)
	}
	if len(fake.Made()) != 0 {
		t.Fatal("port left after Delete")
	}
	if _, err := m.Finder.Lookup(nodestate.Function{PF: 1, SF: nodestate.IntPtr(88)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("representor left after Delete: %v", err)
	}
	// Deleting again is success and makes no devlink call.
	n := len(fake.Calls())
	if err := m.Delete(ctx, 1, 88); err != nil {
		t.Fatal(err)
	}
	if len(fake.Calls()) != n {
		t.Errorf("second Delete made calls: %v", fake.Calls()[n:])
	}
}

// M4: on a default BlueField the DPU's own SF 0 (en3f0pf0sf0, phys_port_name
// pf0sf0) sits in ovsbr1. A host VIF with sf 0 gets a new SF c1pf0sf0 on
// controller 1; the DPU's SF keeps its MAC and state and is never deleted.
func TestHostSF0LeavesTheDPUsOwnSF0Alone(t *testing.T) {
	ctx := context.Background()
	m, fake := setup(t, representortest.Options{})
	dpuSF := representortest.DPUSF(0)
	before, ok := fake.Port(dpuSF)
	if !ok {
		t.Fatalf("the card has no %s", dpuSF)
	}
	touched := func(calls []string) []string {
		var out []string
		for _, c := range calls {
			if strings.HasSuffix(strings.Fields(c)[1], "/"+strconv.FormatUint(uint64(before.PortIndex), 10)) {
				out = append(out, c)
			}
		}
		return out
	}
	rep, err := m.Create(ctx, 0, 0, "fa:16:3e:00:00:01")
	if err != nil || rep != "en3f0c1pf0sf0" {
		t.Fatalf("Create(pf0, sf0) = %q, %v; want the new host SF", rep, err)
	}
	if c := fake.Calls(); len(c) == 0 || !strings.Contains(c[0], "add pci/0000:03:00.0 flavour 7 pfnum 0 sfnum 0 controller 1(valid=true)") {
		t.Errorf("calls = %v, want a port add on controller 1", c)
	}
	if got, err := m.Finder.Lookup(nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)}); err != nil || got != rep {
		t.Errorf("Lookup(pf0sf0) = %q, %v; want %s", got, err, rep)
	}
	if err := m.Delete(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	after, ok := fake.Port(dpuSF)
	if !ok {
		t.Fatalf("%s was deleted", dpuSF)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("%s changed: %+v -> %+v (fn %+v -> %+v)", dpuSF, before, after, before.Fn, after.Fn)
	}
	if c := touched(fake.Calls()); len(c) != 0 {
		t.Errorf("devlink calls on the DPU's own SF: %v", c)
	}
	if len(fake.Made()) != 0 {
		t.Errorf("host SF left: %+v", fake.Made())
	}
}

// The fake models mlx5: SF numbers are per controller, so the host's and the
// DPU's SF 0 coexist, while the same number twice on one controller is
// EEXIST; an external controller on a NIC without one is refused.
func TestFakeDevlinkSFNumbersPerController(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	fake := sftest.NewNetlink(card)
	add := func(ctrl uint32, valid bool) error {
		_, err := fake.DevLinkPortAdd("pci", "0000:03:00.0", 7, netlink.DevLinkPortAddAttrs{PfNumber: 0, SfNumber: 0, SfNumberValid: true, Controller: ctrl, ControllerValid: valid})
		return err
	}
	if err := add(0, false); err == nil || !strings.Contains(err.Error(), "EEXIST") {
		t.Errorf("local sf 0 again: %v, want EEXIST", err)
	}
	if err := add(1, true); err != nil {
		t.Errorf("host sf 0 next to the DPU's: %v", err)
	}
	if err := add(1, true); err == nil || !strings.Contains(err.Error(), "EEXIST") {
		t.Errorf("host sf 0 twice: %v, want EEXIST", err)
	}
	if err := add(2, true); err == nil {
		t.Error("controller 2 accepted")
	}
	if _, err := fake.DevLinkPortAdd("pci", "0000:03:00.0", 7, netlink.DevLinkPortAddAttrs{PfNumber: 1, SfNumber: 3, SfNumberValid: true}); err == nil {
		t.Error("pfnum 1 on the device of pf 0 accepted")
	}
	nic, err := representortest.New(t.TempDir(), representortest.Options{Layout: representortest.SwitchdevNIC, PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sftest.NewNetlink(nic).DevLinkPortAdd("pci", "0000:03:00.0", 7, netlink.DevLinkPortAddAttrs{SfNumber: 1, SfNumberValid: true, Controller: 1, ControllerValid: true}); err == nil {
		t.Error("external controller accepted on a NIC without one")
	}
}

// A local switchdev NIC (spdk-generic) makes SFs without a controller.
func TestCreateOnLocalNIC(t *testing.T) {
	m, fake := setup(t, representortest.Options{Layout: representortest.SwitchdevNIC, PFs: 1})
	rep, err := m.Create(context.Background(), 0, 4, "fa:16:3e:00:00:04")
	if err != nil || rep != "en3f0pf0sf4" {
		t.Fatalf("Create = %q, %v", rep, err)
	}
	if c := fake.Calls(); !strings.Contains(c[0], "sfnum 4 controller 0(valid=false)") {
		t.Errorf("calls = %v", c)
	}
	if err := m.Delete(context.Background(), 0, 4); err != nil || len(fake.Made()) != 0 {
		t.Errorf("Delete: %v, left %+v", err, fake.Made())
	}
}

func TestCreateRollsBackOnActivateFailure(t *testing.T) {
	m, fake := setup(t, representortest.Options{})
	fake.FailFnSet = errors.New("EOPNOTSUPP")
	_, err := m.Create(context.Background(), 0, 7, "fa:16:3e:00:00:07")
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("err = %v, want ErrNetwork", err)
	}
	if len(fake.Made()) != 0 {
		t.Fatal("half-made SF port left behind")
	}
}

func TestCreateBadInput(t *testing.T) {
	m, fake := setup(t, representortest.Options{})
	if _, err := m.Create(context.Background(), 0, 1, "not-a-mac"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad mac: %v", err)
	}
	if _, err := m.Create(context.Background(), 5, 1, "fa:16:3e:00:00:01"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown pf: %v", err)
	}
	bad := *m
	bad.Finder.Controller = 0
	if _, err := bad.Create(context.Background(), 0, 1, "fa:16:3e:00:00:01"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("finder without controller: %v", err)
	}
	if len(fake.Calls()) != 0 {
		t.Errorf("devlink called on bad input: %v", fake.Calls())
	}
}
