package bluefield_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

var _ drivers.NetworkDriver = (*bluefield.Network)(nil)

// The observed VIF state reports the host function's MAC through it.
var _ network.MACReader = (*bluefield.Network)(nil)

// newCard is the driver over a fake BlueField (representortest) and a fake
// devlink.
func newCard(t *testing.T, o representortest.Options) (*bluefield.Network, *sftest.Netlink) {
	t.Helper()
	card, err := representortest.New(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	fake := sftest.NewNetlink(card)
	f := representor.Finder{Root: card.Root, Controller: bluefield.HostController}
	return bluefield.NewNetworkWith(f, &sf.Manager{NL: fake, Finder: f, Log: zap.NewNop()}, drivers.DefaultCard), fake
}

func TestNetworkDriver(t *testing.T) {
	ctx := context.Background()
	n, fake := newCard(t, representortest.Options{})

	// Unknown PF (the card has 0 and 1), reserved SF, negative/huge numbers:
	// ErrInvalidArgument and no devlink call.
	for _, fn := range []nodestate.Function{
		{PF: 2, SF: nodestate.IntPtr(1)}, {PF: 0, SF: nodestate.IntPtr(1000)}, {PF: 0, VF: nodestate.IntPtr(-1)},
		{PF: 0, SF: nodestate.IntPtr(1 << 20)}, {PF: -1},
	} {
		if _, err := n.Prepare(ctx, fn, "fa:16:3e:00:00:01"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Prepare(%s) err = %v, want ErrInvalidArgument", fn, err)
		}
	}
	if c := fake.Calls(); len(c) != 0 {
		t.Fatalf("devlink calls on invalid input: %v", c)
	}

	sf5 := nodestate.Function{PF: 0, SF: nodestate.IntPtr(5)}
	if _, err := n.Representor(ctx, sf5); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("SF before Prepare: %v, want ErrNotFound", err)
	}
	rep, err := n.Prepare(ctx, sf5, "fa:16:3e:00:00:05")
	if err != nil || rep != "en3f0c1pf0sf5" {
		t.Fatalf("Prepare = %q, %v", rep, err)
	}
	if got, err := n.Representor(ctx, sf5); err != nil || got != rep {
		t.Fatalf("Representor after Prepare = %q, %v", got, err)
	}
	// A host VF the host has not enabled is NotFound, and Prepare cannot make it.
	vf3 := nodestate.Function{PF: 0, VF: nodestate.IntPtr(3)}
	if _, err := n.Prepare(ctx, vf3, "fa:16:3e:00:00:03"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("VF Prepare: %v, want ErrNotFound", err)
	}
	if got, err := n.Representor(ctx, nodestate.Function{PF: 1}); err != nil || got != "pf1hpf" {
		t.Fatalf("host PF 1 = %q, %v", got, err)
	}
	if err := n.Release(ctx, sf5); err != nil {
		t.Fatal(err)
	}
	if err := n.Release(ctx, sf5); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if len(fake.Made()) != 0 {
		t.Fatal("SF left after Release")
	}
	if err := n.Release(ctx, vf3); err != nil {
		t.Fatalf("Release of a VF: %v", err)
	}
}

// SF allocation interplay: VIFs without a function get SFs from
// nodestate.AssignFunctions, and those land on distinct BlueField SF representors.
func TestAssignedSFsGetRepresentors(t *testing.T) {
	ctx := context.Background()
	n, _ := newCard(t, representortest.Options{PFs: 1})
	d := &nodestate.Desired{VIFs: []nodestate.VIF{
		{PortID: "11111111-1111-1111-1111-111111111111", MAC: "fa:16:3e:00:00:01"},
		{PortID: "22222222-2222-2222-2222-222222222222", MAC: "fa:16:3e:00:00:02", Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(1)}},
		{PortID: "33333333-3333-3333-3333-333333333333", MAC: "fa:16:3e:00:00:03"},
	}}
	if err := nodestate.AssignFunctions(nil, d, 1); err != nil {
		t.Fatal(err)
	}
	reps := map[string]bool{}
	for _, v := range d.VIFs {
		rep, err := n.Prepare(ctx, *v.Function, v.MAC)
		if err != nil {
			t.Fatal(err)
		}
		if reps[rep] {
			t.Fatalf("representor %s handed out twice", rep)
		}
		reps[rep] = true
	}
	for _, want := range []string{"en3f0c1pf0sf1", "en3f0c1pf0sf2", "en3f0c1pf0sf3"} {
		if !reps[want] {
			t.Errorf("missing %s in %v", want, reps)
		}
	}
}

// M4 through the driver: a host VIF with sf 0 on a default BlueField gets
// the new host SF c1pf0sf0; Representor never names the DPU's own
// en3f0pf0sf0, whose devlink function stays as it was through Prepare and
// Release.
func TestHostSF0IsNotTheDPUsSF0(t *testing.T) {
	ctx := context.Background()
	n, fake := newCard(t, representortest.Options{})
	dpuSF := representortest.DPUSF(0)
	before, _ := fake.Port(dpuSF)
	sf0 := nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)}
	if got, err := n.Representor(ctx, sf0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Representor(pf0sf0) before Prepare = %q, %v; want ErrNotFound", got, err)
	}
	rep, err := n.Prepare(ctx, sf0, "fa:16:3e:00:00:10")
	if err != nil || rep == dpuSF || rep != "en3f0c1pf0sf0" {
		t.Fatalf("Prepare(pf0sf0) = %q, %v", rep, err)
	}
	if err := n.Release(ctx, sf0); err != nil {
		t.Fatal(err)
	}
	after, ok := fake.Port(dpuSF)
	if !ok || after.Fn.HwAddr.String() != before.Fn.HwAddr.String() || after.Fn.State != before.Fn.State || after.PortIndex != before.PortIndex {
		t.Fatalf("%s: %+v -> %+v", dpuSF, before.Fn, after)
	}
}

// The read-only inventory and SF probe for check --hardware.
func TestInventoryAndProbe(t *testing.T) {
	n, fake := newCard(t, representortest.Options{})
	inv, err := n.Inventory()
	if err != nil || len(inv.Uplinks) != 2 || len(inv.Host) != 2 || len(inv.NotForHost) != 2 {
		t.Fatalf("Inventory = %+v, %v", inv, err)
	}
	s, err := n.ProbeSF(context.Background())
	if err != nil || len(s.Devices) != 2 || !s.Devices[0].Ready || !s.Devices[1].Ready {
		t.Fatalf("ProbeSF = %+v, %v", s, err)
	}
	if c := fake.Calls(); len(c) != 0 {
		t.Errorf("inventory/probe made devlink calls: %v", c)
	}
	other := bluefield.NewNetworkWith(representor.Finder{Root: t.TempDir(), Controller: 1}, fakeSFs{}, drivers.DefaultCard)
	if _, err := other.ProbeSF(context.Background()); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Errorf("ProbeSF without a prober: %v", err)
	}
}

type fakeSFs struct{}

func (fakeSFs) Create(context.Context, int, int, string) (string, error) { return "", nil }
func (fakeSFs) Delete(context.Context, int, int) error                   { return nil }
func (fakeSFs) SetVFMAC(context.Context, string, string) error           { return nil }
func (fakeSFs) FunctionMAC(context.Context, string) (string, error)      { return "", nil }

// A host VF gets the VIF's (Neutron port's) MAC from the DPU through its
// devlink port function, once: a second Prepare with the same MAC sends
// nothing (no touch of a running host's NIC), a new MAC is set, a PF is
// never re-MAC'd, and the DPU's own VF-less SF is left alone.
func TestVFGetsTheVIFsMAC(t *testing.T) {
	ctx := context.Background()
	n, fake := newCard(t, representortest.Options{})
	if err := fake.Card.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	vf1 := nodestate.Function{PF: 0, VF: nodestate.IntPtr(1)}
	rep, err := n.Prepare(ctx, vf1, "fa:16:3e:00:00:11")
	if err != nil || rep != "pf0vf1" {
		t.Fatalf("Prepare(pf0vf1) = %q, %v", rep, err)
	}
	port, ok := fake.Port(rep)
	if !ok || port.Fn == nil || port.Fn.HwAddr.String() != "fa:16:3e:00:00:11" {
		t.Fatalf("pf0vf1 devlink function = %+v", port)
	}
	calls := len(fake.Calls())
	if _, err := n.Prepare(ctx, vf1, "FA:16:3E:00:00:11"); err != nil || len(fake.Calls()) != calls {
		t.Fatalf("same MAC again: %v, devlink calls %q", err, fake.Calls()[calls:])
	}
	if _, err := n.Prepare(ctx, vf1, "fa:16:3e:00:00:12"); err != nil {
		t.Fatal(err)
	}
	if port, _ := fake.Port(rep); port.Fn.HwAddr.String() != "fa:16:3e:00:00:12" {
		t.Fatalf("new MAC not set: %+v", port.Fn)
	}
	calls = len(fake.Calls())
	if _, err := n.Prepare(ctx, nodestate.Function{PF: 0}, "fa:16:3e:00:00:13"); err != nil || len(fake.Calls()) != calls {
		t.Fatalf("host PF: %v, devlink calls %q", err, fake.Calls()[calls:])
	}
	if _, err := n.Prepare(ctx, vf1, "not-a-mac"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad MAC: %v", err)
	}
}

// FunctionMAC reads back what the host sees: the VF's or SF's devlink
// function hw_addr; a host PF's is not the DPU's.
func TestFunctionMACReadsDevlink(t *testing.T) {
	ctx := context.Background()
	n, fake := newCard(t, representortest.Options{})
	if err := fake.Card.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	vf0 := nodestate.Function{PF: 0, VF: nodestate.IntPtr(0)}
	if mac, err := n.FunctionMAC(ctx, vf0); err != nil || mac != "" {
		t.Fatalf("vf0 before Prepare = %q, %v, want no MAC", mac, err)
	}
	if _, err := n.Prepare(ctx, vf0, "fa:16:3e:00:00:20"); err != nil {
		t.Fatal(err)
	}
	if mac, err := n.FunctionMAC(ctx, vf0); err != nil || mac != "fa:16:3e:00:00:20" {
		t.Fatalf("vf0 = %q, %v", mac, err)
	}
	sf3 := nodestate.Function{PF: 1, SF: nodestate.IntPtr(3)}
	if _, err := n.FunctionMAC(ctx, sf3); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("sf3 before Prepare: %v, want ErrNotFound", err)
	}
	if _, err := n.Prepare(ctx, sf3, "fa:16:3e:00:00:23"); err != nil {
		t.Fatal(err)
	}
	if mac, err := n.FunctionMAC(ctx, sf3); err != nil || mac != "fa:16:3e:00:00:23" {
		t.Fatalf("sf3 = %q, %v", mac, err)
	}
	if _, err := n.FunctionMAC(ctx, nodestate.Function{PF: 0}); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("host PF: %v, want ErrNotSupported", err)
	}
	if _, err := n.FunctionMAC(ctx, nodestate.Function{PF: 5, VF: nodestate.IntPtr(0)}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown PF: %v, want ErrInvalidArgument", err)
	}
}
