package sf_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func setup(t *testing.T) (*sf.Manager, *sftest.Netlink) {
	t.Helper()
	root := t.TempDir()
	if err := sftest.MakeCard(root, 2); err != nil {
		t.Fatal(err)
	}
	fake := sftest.NewNetlink(root)
	return &sf.Manager{NL: fake, Finder: representor.Finder{Root: root, Controller: 1}, Controller: 1, Log: zap.NewNop()}, fake
}

func TestCreateDeleteLifecycle(t *testing.T) {
	ctx := context.Background()
	m, fake := setup(t)
	rep, err := m.Create(ctx, 1, 88, "fa:16:3e:00:00:88")
	if err != nil || rep != "en3f1pf1sf88" {
		t.Fatalf("Create = %q, %v", rep, err)
	}
	ps := fake.Ports()
	if len(ps) != 1 || ps[0].DeviceName != "0000:03:00.1" || ps[0].Fn.HwAddr.String() != "fa:16:3e:00:00:88" || ps[0].Fn.State != 1 {
		t.Fatalf("port after create: %+v fn %+v", ps[0], ps[0].Fn)
	}
	if c := fake.Calls(); !strings.Contains(c[0], "add pci/0000:03:00.1 flavour 7 pfnum 1 sfnum 88 controller 1") {
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
	if ps := fake.Ports(); len(ps) != 1 || ps[0].Fn.HwAddr.String() != "fa:16:3e:00:00:99" {
		t.Fatalf("after second create: %d ports, mac %v", len(ps), ps[0].Fn.HwAddr)
	}
	if err := m.Delete(ctx, 1, 88); err != nil {
		t.Fatal(err)
	}
	if len(fake.Ports()) != 0 {
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

func TestCreateRollsBackOnActivateFailure(t *testing.T) {
	m, fake := setup(t)
	fake.FailFnSet = errors.New("EOPNOTSUPP")
	_, err := m.Create(context.Background(), 0, 7, "fa:16:3e:00:00:07")
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("err = %v, want ErrNetwork", err)
	}
	if len(fake.Ports()) != 0 {
		t.Fatal("half-made SF port left behind")
	}
}

func TestCreateBadInput(t *testing.T) {
	m, fake := setup(t)
	if _, err := m.Create(context.Background(), 0, 1, "not-a-mac"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad mac: %v", err)
	}
	if _, err := m.Create(context.Background(), 5, 1, "fa:16:3e:00:00:01"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown pf: %v", err)
	}
	if len(fake.Calls()) != 0 {
		t.Errorf("devlink called on bad input: %v", fake.Calls())
	}
}
