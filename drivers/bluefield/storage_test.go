package bluefield_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

var _ drivers.StorageDriver = (*bluefield.Storage)(nil)

const nodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

func newSNAP(t *testing.T, socket string, o bluefield.StorageOptions) *bluefield.Storage {
	t.Helper()
	cl := spdk.NewUnix(socket, nil)
	t.Cleanup(func() { _ = cl.Close() })
	o.Client, o.NodeUUID = cl, nodeUUID
	d, err := bluefield.NewStorage(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func vf(pf, vf int) nodestate.Function { return nodestate.Function{PF: pf, VF: nodestate.IntPtr(vf)} }

// M1: the NVMe functions are SNAP's emulation functions (NVMe type only),
// VFs only once the host enabled SR-IOV; a function SNAP lacks is refused
// with a message naming it and what exists.
func TestFunctionsComeFromSNAP(t *testing.T) {
	emu := spdktest.StartT(t, spdktest.Options{SNAPPFs: 1, SNAPVFs: 4, SNAPVirtioBlkPFs: 2})
	d := newSNAP(t, emu.Socket(), bluefield.StorageOptions{})
	if err := d.ValidateFunction(nodestate.Function{PF: 0}); err != nil {
		t.Fatalf("pf0: %v", err)
	}
	// pf1 exists only as a virtio-blk function.
	err := d.ValidateFunction(nodestate.Function{PF: 1})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "function pf1") ||
		!strings.Contains(err.Error(), "pf0 (3b:00.2)") {
		t.Fatalf("pf1: %v", err)
	}
	if err := d.ValidateFunction(vf(0, 0)); !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.Is(err, drivers.ErrFunctionAbsent) ||
		!strings.Contains(err.Error(), "SR-IOV") {
		t.Fatalf("vf before SR-IOV: %v", err)
	}
	if err := d.ValidateFunction(nodestate.Function{PF: 0, SF: nodestate.IntPtr(1)}); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("sf: %v", err)
	}
	// Judged from the cached list: no call per admission.
	n := emu.Calls("emulation_function_list")
	for i := 0; i < 5; i++ {
		if err := d.ValidateFunction(nodestate.Function{PF: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if emu.Calls("emulation_function_list") != n {
		t.Fatalf("cached pf0 cost %d list calls", emu.Calls("emulation_function_list")-n)
	}

	if err := emu.EnableSRIOV(0, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Controllers(context.Background()); err != nil { // a reconcile refreshes the list
		t.Fatal(err)
	}
	if err := d.ValidateFunction(vf(0, 1)); err != nil {
		t.Fatalf("vf1 after SR-IOV: %v", err)
	}
	if err := d.ValidateFunction(vf(0, 2)); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "pf0vf1 (3b:04.1)") {
		t.Fatalf("vf2 of 2: %v", err)
	}
	// A miss in a list older than a second is asked again before refusing.
	if err := emu.EnableSRIOV(0, 4); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := d.ValidateFunction(vf(0, 3)); err != nil {
		t.Fatalf("vf3 after more SR-IOV: %v", err)
	}
}

// ValidateFunction has no ctx: it must not hang on SNAP. Unreached or hung,
// the function is admitted (the reconcile reports it: see the storage
// package's TestBluefieldAdmitsWhileSNAPIsDown), one bounded wait per burst.
func TestValidateFunctionDoesNotWaitForSNAP(t *testing.T) {
	down := newSNAP(t, filepath.Join(t.TempDir(), "nothing.sock"), bluefield.StorageOptions{})
	if err := down.ValidateFunction(vf(3, 9)); err != nil {
		t.Fatalf("SNAP down: %v", err)
	}
	path, asked := spdktest.HungMethodsT(t) // never answers: only ListTimeout ends the wait
	hung := newSNAP(t, path, bluefield.StorageOptions{ListTimeout: 100 * time.Millisecond})
	var err error
	start := time.Now()
	poll.Returns(t, "ValidateFunction (SNAP never answers)", func() { err = hung.ValidateFunction(vf(0, 9)) })
	// A lower bound only (no load makes it fail): it asked SNAP and gave up
	// at ListTimeout, not before.
	if d := time.Since(start); err != nil || d < 100*time.Millisecond {
		t.Fatalf("SNAP hung: %v after %s, want admitted after the 100ms ListTimeout", err, d)
	}
	var method string
	poll.Returns(t, "waiting for SNAP to read the request", func() { method = <-asked })
	if method != "emulation_function_list" {
		t.Fatalf("SNAP was asked %s", method)
	}
	errs := make([]error, 10)
	poll.Returns(t, "10 more admissions with SNAP hung", func() {
		for i := range errs {
			errs[i] = hung.ValidateFunction(nodestate.Function{PF: i % 4})
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Correct code sends nothing more. A re-ask waits 100ms after sending,
	// so in practice its request has been read by now.
	select {
	case m := <-asked:
		t.Fatalf("10 more admissions asked SNAP again (%s)", m)
	default:
	}
}

// Inventory and Plan read SNAP and change nothing.
func TestInventoryAndPlan(t *testing.T) {
	emu := spdktest.StartT(t, spdktest.Options{SNAPPFs: 2, SNAPVFs: 4, SNAPVirtioBlkPFs: 1})
	if err := emu.EnableSRIOV(1, 1); err != nil {
		t.Fatal(err)
	}
	d := newSNAP(t, emu.Socket(), bluefield.StorageOptions{})
	ctx := context.Background()
	emu.ResetCalls()
	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Version != "SPDK v24.09" || len(inv.Functions) != 4 {
		t.Fatalf("inventory = %+v", inv)
	}
	pf0, vf10, blk := inv.Functions[0], inv.Functions[2], inv.Functions[3]
	if pf0.Type != bluefield.EmulationTypeNVMe || pf0.PF != 0 || pf0.VF != nil || pf0.CtrlID != spdktest.SNAPInitCtrl || pf0.PCIBDF != "3b:00.2" || pf0.VUID == "" {
		t.Fatalf("pf0 = %+v", pf0)
	}
	if vf10.PF != 1 || vf10.VF == nil || *vf10.VF != 0 || vf10.CtrlID != "" || vf10.Hotplugged {
		t.Fatalf("pf1vf0 = %+v", vf10)
	}
	if blk.Type == bluefield.EmulationTypeNVMe {
		t.Fatalf("virtio-blk function = %+v", blk)
	}
	steps, err := d.Plan(ctx, []nodestate.Function{{PF: 0}, {PF: 1}, vf(1, 0), vf(0, 0), {PF: 0, SF: nodestate.IntPtr(0)}, {PF: 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pf0: adopt controller NVMeCtrl1 of subsystem " + spdktest.SNAPInitNQN + " on 3b:00.2",
		"pf1: create subsystem " + drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 1}) + " and a suspended controller on pci_bdf 3b:00.3",
		"pf1vf0: create subsystem " + drivers.HostSubsystemNQN(nodeUUID, vf(1, 0)) + " and a suspended controller on pci_bdf 3b:04.4",
		"pf0vf0: refused: invalid argument: function pf0vf0: SNAP does not emulate it",
		"pf0sf0: refused: SNAP emulates NVMe on PFs and VFs, not SFs",
	}
	if len(steps) != len(want) {
		t.Fatalf("plan = %+v", steps)
	}
	for i := range want {
		if !strings.HasPrefix(steps[i].Text, want[i]) {
			t.Errorf("plan[%d] = %q, want prefix %q", i, steps[i].Text, want[i])
		}
		if refused := strings.Contains(want[i], ": refused: "); steps[i].Problem != refused {
			t.Errorf("plan[%d] problem = %v, want %v", i, steps[i].Problem, refused)
		}
	}
	if emu.MutatingCalls() != 0 {
		t.Fatalf("inventory/plan mutated: %v", emu.CallCounts())
	}
}
