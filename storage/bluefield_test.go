package storage_test

// The storage reconciler with the BlueField SNAP driver, against the SNAP
// emulator (docs/bluefield-snap.md).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

func snapDriver(t *testing.T) func(*spdk.Client) drivers.StorageDriver {
	return func(cl *spdk.Client) drivers.StorageDriver {
		d, err := bluefield.NewStorage(bluefield.StorageOptions{Client: cl, NodeUUID: nodeUUID})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
}

// snapEmu is newEmu with SNAP options.
func snapEmu(t *testing.T, o spdktest.Options) *spdktest.Emulator {
	o.Remotes = []spdktest.RemoteSubsystem{
		spdktest.CinderVolume(bootID, hostNQN, "4420", "4421"),
		spdktest.CinderVolume(data1ID, hostNQN, "4420"),
		spdktest.CinderVolume(data2ID, hostNQN, "4420", "4421"),
	}
	return spdktest.StartT(t, o)
}

func onVF(v nodestate.Volume, pf, vf int) nodestate.Volume {
	v.Function = &nodestate.Function{PF: pf, VF: nodestate.IntPtr(vf)}
	return v
}

// host is what the host sees per function: "<ctrl>@<nqn> running [nsids]".
func host(emu *spdktest.Emulator) map[string]string {
	out := map[string]string{}
	for _, h := range emu.SNAPHost() {
		f := nodestate.Function{PF: h.PF, VF: h.VF}
		state := "suspended"
		if h.Running {
			state = "running"
		}
		out[f.String()] = fmt.Sprintf("%s@%s %s %v", h.CtrlID, h.NQN, state, h.NSIDs)
	}
	return out
}

func paramKeys(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The agent's own controllers, on a SNAP without the published init
// configuration: one subsystem and suspended controller per function,
// created by the function's pci_bdf, resumed once its namespaces are in.
func TestBluefieldSNAP(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPNoInitConfig: true, SNAPPFs: 1, SNAPVFs: 4})
	if err := emu.EnableSRIOV(0, 4); err != nil {
		t.Fatal(err)
	}
	g := newRig(t, emu, snapDriver(t))
	all := desired(bootVol(), data1(), onVF(data2(), 0, 2))
	g.reconcile(all)
	for _, m := range []string{"nvme_subsystem_create", "nvme_controller_create", "nvme_controller_resume"} {
		if emu.Calls(m) != 2 {
			t.Errorf("%s called %d times, want 2 (pf0, pf0vf2)", m, emu.Calls(m))
		}
	}
	if emu.Calls("nvme_namespace_create") != 3 || emu.Calls("nvme_controller_attach_ns") != 3 {
		t.Errorf("namespace calls = %v", emu.CallCounts())
	}
	// M3: the subsystem is created with the nqn alone (the only key
	// NVIDIA's client sends); controllers by pci_bdf, suspended.
	for _, p := range emu.Params("nvme_subsystem_create") {
		if k := paramKeys(t, p); !reflect.DeepEqual(k, []string{"nqn"}) {
			t.Errorf("nvme_subsystem_create keys = %v", k)
		}
	}
	bdfs := map[string]bool{}
	for _, p := range emu.Params("nvme_controller_create") {
		var m map[string]any
		_ = json.Unmarshal(p, &m)
		if k := paramKeys(t, p); !reflect.DeepEqual(k, []string{"nqn", "pci_bdf", "suspended"}) || m["suspended"] != true {
			t.Errorf("nvme_controller_create = %s", p)
		}
		bdf, _ := m["pci_bdf"].(string)
		bdfs[bdf] = true
	}
	if !bdfs["3b:00.2"] || !bdfs["3b:04.2"] {
		t.Errorf("controllers on %v, want 3b:00.2 (pf0) and 3b:04.2 (pf0vf2)", bdfs)
	}
	vf2 := nodestate.Function{PF: 0, VF: nodestate.IntPtr(2)}
	want := map[string]string{
		"pf0":    "NVMeCtrl1@" + pf0NQN + " running [1 2]",
		"pf0vf2": "NVMeCtrl2@" + drivers.HostSubsystemNQN(nodeUUID, vf2) + " running [1]",
	}
	if h := host(emu); !reflect.DeepEqual(h, want) {
		t.Fatalf("host sees %v, want %v", h, want)
	}
	if n := g.mutations(func() { g.reconcile(all) }); n != 0 {
		t.Fatalf("unchanged SNAP reconcile made %d mutating calls: %v", n, emu.CallCounts())
	}
	// Unplug the VF disk: its controller and subsystem go (no volume left there).
	emu.ResetCalls()
	g.reconcile(desired(bootVol(), data1()))
	if seq := strings.Join(mutatingOrder(emu), ","); seq != "nvme_controller_detach_ns,nvme_namespace_destroy,nvme_controller_destroy,nvme_subsystem_destroy,bdev_nvme_detach_controller" {
		t.Fatalf("SNAP unplug order = %s", seq)
	}
	g.reconcile(desired())
	if h := host(emu); len(h) != 0 {
		t.Fatalf("left over: %v", h)
	}
	if n := g.mutations(func() { g.reconcile(desired()) }); n != 0 {
		t.Fatal("repeat detach-all mutated")
	}
	// SNAP has no VF 9 (and SNAP cannot use SFs).
	bad := onVF(data2(), 0, 9)
	if err := g.r.Validate(context.Background(), desired(bad)); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "pf0vf9") {
		t.Fatalf("vf 9: %v", err)
	}
	bad.Function = &nodestate.Function{PF: 0, SF: nodestate.IntPtr(1)}
	if err := g.r.Validate(context.Background(), desired(bad)); err == nil || !strings.Contains(err.Error(), "not an SF") {
		t.Fatalf("sf: %v", err)
	}
}

// NVIDIA's published configuration pre-creates the admin-only controller
// NVMeCtrl1 on PF 0: the agent adopts it (its subsystem holds the
// namespaces), recognises it after a restart, and never destroys it, its
// subsystem or a controller that has nothing of the agent's.
func TestBluefieldAdoptsPreCreatedController(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPPFs: 2})
	ctx := context.Background()
	cl := spdk.NewUnix(emu.Socket(), nil)
	defer cl.Close()
	other := "nqn.2024-01.example:someone-else"
	for _, c := range []struct {
		m string
		p map[string]any
	}{
		{"bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 64, "block_size": 512}},
		{"nvme_subsystem_create", map[string]any{"nqn": other}},
		{"nvme_namespace_create", map[string]any{"nqn": other, "nsid": 1, "bdev_name": "Malloc0"}},
		{"nvme_controller_create", map[string]any{"nqn": other, "pf_id": 1, "ctrl": "TheirCtrl"}},
		{"nvme_controller_attach_ns", map[string]any{"ctrl_id": "TheirCtrl", "nsid": 1}},
	} {
		if err := cl.Call(ctx, c.m, c.p, nil); err != nil {
			t.Fatalf("%s: %v", c.m, err)
		}
	}
	emu.ResetCalls()
	g := newRig(t, emu, snapDriver(t))
	all := desired(bootVol(), data1())
	g.reconcile(all)
	if emu.Calls("nvme_subsystem_create")+emu.Calls("nvme_controller_create") != 0 {
		t.Fatalf("created beside the existing controller: %v", emu.CallCounts())
	}
	theirs := "TheirCtrl@" + other + " running [1]"
	want := map[string]string{"pf0": "NVMeCtrl1@" + spdktest.SNAPInitNQN + " running [1 2]", "pf1": theirs}
	if h := host(emu); !reflect.DeepEqual(h, want) {
		t.Fatalf("host sees %v, want %v", h, want)
	}
	if st := g.observe()[bootID]; st.State != nodestate.StateAttached || st.NSID != 1 {
		t.Fatalf("boot = %+v", st)
	}
	if n := g.mutations(func() { g.reconcile(all) }); n != 0 {
		t.Fatalf("unchanged reconcile on the adopted controller made %d mutating calls: %v", n, emu.Methods())
	}
	// Agent restart: the adopted controller is recognised (nothing is
	// re-created); it is resumed once, as the new process never did.
	g2 := newRig(t, emu, snapDriver(t))
	emu.ResetCalls()
	g2.reconcile(all)
	if seq := strings.Join(mutatingOrder(emu), ","); seq != "nvme_controller_resume" {
		t.Fatalf("after restart: %s", seq)
	}
	// Detach everything: only the agent's namespaces go.
	emu.ResetCalls()
	g2.reconcile(desired())
	if emu.Calls("nvme_controller_destroy")+emu.Calls("nvme_subsystem_destroy") != 0 || emu.Calls("nvme_namespace_destroy") != 2 {
		t.Fatalf("detach-all calls = %v", emu.CallCounts())
	}
	want["pf0"] = "NVMeCtrl1@" + spdktest.SNAPInitNQN + " running []"
	if h := host(emu); !reflect.DeepEqual(h, want) {
		t.Fatalf("after detach-all the host sees %v, want %v", h, want)
	}
	if n := g2.mutations(func() { g2.reconcile(desired()) }); n != 0 {
		t.Fatalf("repeat detach-all mutated: %v", emu.Methods())
	}
	// Their namespace at nsid 1 of their subsystem is not the agent's to
	// replace (a volume on pf1 goes into TheirCtrl's subsystem).
	pf1 := data2()
	pf1.Function = &nodestate.Function{PF: 1}
	err := g2.r.Reconcile(ctx, desired(bootVol(), pf1))
	if !errors.Is(err, errdefs.ErrConflict) || host(emu)["pf1"] != theirs {
		t.Fatalf("nsid taken by someone else: %v; host %v", err, host(emu))
	}
}

// M2: no SNAP field says whether a controller is suspended (the emulator's
// nvme_controller_list has none). A failed resume, and an agent restart
// right after one, still end with the host seeing its disk.
func TestBluefieldActivatesWithoutSuspendedField(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPNoInitConfig: true, SNAPPFs: 1})
	ctx := context.Background()
	g := newRig(t, emu, snapDriver(t))
	var list []map[string]any
	emu.InjectError("nvme_controller_resume", -1, "Operation not permitted")
	if err := g.r.Reconcile(ctx, desired(bootVol())); err == nil {
		t.Fatal("resume failure not reported")
	}
	if err := g.cl.Call(ctx, "nvme_controller_list", nil, &list); err != nil || len(list) != 1 {
		t.Fatalf("controllers = %v %v", list, err)
	}
	if _, ok := list[0]["suspended"]; ok {
		t.Fatalf("nvme_controller_list has an unpublished field: %v", list[0])
	}
	if h := host(emu)["pf0"]; !strings.HasSuffix(h, "suspended [1]") {
		t.Fatalf("after a failed resume the host sees %q", h)
	}
	g.reconcile(desired(bootVol())) // same process: retried
	if h := host(emu)["pf0"]; !strings.HasSuffix(h, "running [1]") {
		t.Fatalf("after the retry the host sees %q", h)
	}

	// The same failure, then an agent restart before any retry.
	g.reconcile(desired())
	emu.InjectError("nvme_controller_resume", -1, "Operation not permitted")
	if err := g.r.Reconcile(ctx, desired(bootVol())); err == nil {
		t.Fatal("resume failure not reported")
	}
	g2 := newRig(t, emu, snapDriver(t))
	g2.reconcile(desired(bootVol()))
	if h := host(emu)["pf0"]; !strings.HasSuffix(h, "running [1]") {
		t.Fatalf("after restart the host sees %q", h)
	}
}

// A VF admitted while it existed may go (the host dropped SR-IOV): the
// volume on it fails, and the reconcile still serves the others.
func TestBluefieldVFGoneFailsOnlyItsVolume(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPNoInitConfig: true, SNAPPFs: 1, SNAPVFs: 2})
	if err := emu.EnableSRIOV(0, 2); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := newRig(t, emu, snapDriver(t))
	all := desired(bootVol(), onVF(data2(), 0, 1))
	if err := g.r.Validate(ctx, all); err != nil {
		t.Fatalf("admission: %v", err)
	}
	if err := emu.EnableSRIOV(0, 0); err != nil {
		t.Fatal(err)
	}
	for pass := 0; pass < 2; pass++ {
		err := g.r.Reconcile(ctx, all)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "pf0vf1") {
			t.Fatalf("pass %d: %v", pass, err)
		}
		obs := g.observe()
		if obs[bootID].State != nodestate.StateAttached || obs[data2ID].State != nodestate.StateError ||
			!strings.Contains(obs[data2ID].LastError, "SNAP does not emulate it") {
			t.Fatalf("pass %d: %+v", pass, obs)
		}
		if h := host(emu); len(h) != 1 || !strings.HasSuffix(h["pf0"], "running [1]") {
			t.Fatalf("pass %d: host sees %v", pass, h)
		}
		// Someone hot-unplugs the boot disk: the next pass repairs it.
		if pass == 0 {
			ctrl := emu.SNAPHost()[0].CtrlID
			if err := g.cl.Call(ctx, "nvme_controller_detach_ns", map[string]any{"ctrl_id": ctrl, "nsid": 1}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// SNAP never reached: the function is admitted unchecked, the reconcile
// reports SNAP's absence on every volume, and once SNAP answers, the
// function it does not emulate on that volume alone.
func TestBluefieldAdmitsWhileSNAPIsDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "snap.sock")
	cl := spdk.NewUnix(sock, nil)
	defer cl.Close()
	r, err := storage.New(storage.Options{Client: cl, Storage: storageOpts(), NodeUUID: nodeUUID, Driver: snapDriver(t)(cl)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	all := desired(bootVol(), onVF(data2(), 0, 9))
	if err := r.Validate(ctx, all); err != nil {
		t.Fatalf("admission with SNAP down: %v", err)
	}
	if err := r.Reconcile(ctx, all); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("reconcile with SNAP down: %v", err)
	}
	emu := spdktest.New(spdktest.Options{SNAPPFs: 1, Remotes: []spdktest.RemoteSubsystem{
		spdktest.CinderVolume(bootID, hostNQN, "4420", "4421"), spdktest.CinderVolume(data2ID, hostNQN, "4420")}})
	if err := emu.Start(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Stop() })
	err = r.Reconcile(ctx, all)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "pf0vf9") {
		t.Fatalf("reconcile with SNAP up: %v", err)
	}
	var obs nodestate.Observed
	r.Observe(ctx, &obs)
	for _, v := range obs.Volumes {
		if (v.VolumeID == bootID) != (v.State == nodestate.StateAttached) {
			t.Fatalf("volume %s: %+v", v.VolumeID, v)
		}
	}
}

// SNAP crashes and restarts with only its init configuration: the agent
// re-adopts NVMeCtrl1 and re-creates its VF controller, which SNAP names as
// the lost one; that new controller is resumed too, even when its first
// resume fails (nothing carried over from the old one).
func TestBluefieldAfterSNAPRestart(t *testing.T) {
	emu := snapEmu(t, spdktest.Options{SNAPPFs: 1, SNAPVFs: 2})
	if err := emu.EnableSRIOV(0, 1); err != nil {
		t.Fatal(err)
	}
	g := newRig(t, emu, snapDriver(t))
	all := desired(bootVol(), onVF(data2(), 0, 0))
	g.reconcile(all)
	vf0 := drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0, VF: nodestate.IntPtr(0)})
	want := map[string]string{
		"pf0":    "NVMeCtrl1@" + spdktest.SNAPInitNQN + " running [1]",
		"pf0vf0": "NVMeCtrl2@" + vf0 + " running [1]",
	}
	if h := host(emu); !reflect.DeepEqual(h, want) {
		t.Fatalf("host sees %v, want %v", h, want)
	}
	sock := emu.Socket()
	if err := emu.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(sock); err != nil {
		t.Fatal(err)
	}
	// The first resume of the new NVMeCtrl2 fails; the retry must not take
	// it for the old one, which this process had resumed.
	emu.InjectError("nvme_controller_resume", -1, "Operation not permitted")
	if err := g.r.Reconcile(context.Background(), all); err == nil || emu.Calls("nvme_controller_resume") != 3 {
		t.Fatalf("resume failure not reported (%v), or NVMeCtrl1 resumed again: %v", err, emu.CallCounts())
	}
	g.reconcile(all)
	if h := host(emu); !reflect.DeepEqual(h, want) {
		t.Fatalf("after the SNAP restart the host sees %v, want %v", h, want)
	}
}
