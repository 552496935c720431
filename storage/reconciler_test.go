package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	nodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	hostNQN  = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
	bootID   = "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"
	data1ID  = "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f"
	data2ID  = "c0ffee00-1111-4222-8333-444455556666"
)

var _ agent.Reconciler = (*storage.Reconciler)(nil)

var pf0NQN = drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0})

func storageOpts() storage.Settings {
	return storage.Settings{HostNQN: hostNQN, CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5, FastIOFailTimeoutSec: 0, Multipath: "multipath"}
}

// newEmu starts an emulator that serves the three test volumes: the boot
// volume on two portals, the data disks on one.
func newEmu(t *testing.T) *spdktest.Emulator {
	return spdktest.StartT(t, spdktest.Options{Remotes: []spdktest.RemoteSubsystem{
		spdktest.CinderVolume(bootID, hostNQN, "4420", "4421"),
		spdktest.CinderVolume(data1ID, hostNQN, "4420"),
		spdktest.CinderVolume(data2ID, hostNQN, "4420", "4421"),
	}})
}

type rig struct {
	t   *testing.T
	emu *spdktest.Emulator
	cl  *spdk.Client
	r   *storage.Reconciler
}

func newRig(t *testing.T, emu *spdktest.Emulator, mk func(*spdk.Client) drivers.StorageDriver) *rig {
	t.Helper()
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	r, err := storage.New(storage.Options{Client: cl, Storage: storageOpts(), NodeUUID: nodeUUID, Driver: mk(cl)})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, emu: emu, cl: cl, r: r}
}

// persistent builds a reconciler that remembers nsids in file: building it
// again is an agent restart.
func persistent(t *testing.T, emu *spdktest.Emulator, o storage.Settings, file string) *storage.Reconciler {
	t.Helper()
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	r, err := storage.New(storage.Options{Client: cl, Storage: o, NodeUUID: nodeUUID, Driver: simDriver(t)(cl), NSIDFile: file})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func simDriver(t *testing.T) func(*spdk.Client) drivers.StorageDriver {
	return func(cl *spdk.Client) drivers.StorageDriver {
		d, err := sim.NewStorage(cl, nodeUUID, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
}

// Connection info in Cinder's two formats.
func newFormat(id string, ports ...int) nodestate.ConnectionInfo {
	var portals []any
	for _, p := range ports {
		portals = append(portals, []any{"127.0.0.1", float64(p), "tcp"})
	}
	return nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
		"target_nqn": "nqn.2010-10.org.openstack:volume-" + id, "vol_uuid": id, "portals": portals,
	}}
}

func oldFormat(id string, port int) nodestate.ConnectionInfo {
	return nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
		"nqn": "nqn.2010-10.org.openstack:volume-" + id, "target_portal": "127.0.0.1",
		"target_port": float64(port), "transport_type": "tcp", "ns_id": float64(1),
	}}
}

func desired(vols ...nodestate.Volume) *nodestate.Desired {
	return &nodestate.Desired{Generation: 1, NodeUUID: nodeUUID, Volumes: vols, VIFs: []nodestate.VIF{}}
}

func bootVol() nodestate.Volume {
	return nodestate.Volume{VolumeID: bootID, BootIndex: nodestate.IntPtr(0), ConnectionInfo: newFormat(bootID, 4420, 4421)}
}
func data1() nodestate.Volume {
	return nodestate.Volume{VolumeID: data1ID, ConnectionInfo: oldFormat(data1ID, 4420)}
}
func data2() nodestate.Volume {
	return nodestate.Volume{VolumeID: data2ID, BootIndex: nodestate.IntPtr(1), ConnectionInfo: newFormat(data2ID, 4420)}
}

func (g *rig) reconcile(d *nodestate.Desired) {
	g.t.Helper()
	if err := g.r.Reconcile(context.Background(), d); err != nil {
		g.t.Fatalf("reconcile: %v", err)
	}
}

// mutations runs f and returns how many mutating SPDK calls it made.
func (g *rig) mutations(f func()) int {
	g.emu.ResetCalls()
	f()
	return g.emu.MutatingCalls()
}

func (g *rig) namespaces(nqn string) map[int]string {
	g.t.Helper()
	subs, err := g.cl.GetSubsystems(context.Background(), nqn)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[int]string{}
	for _, ns := range subs[0].Namespaces {
		out[ns.NSID] = ns.BdevName
	}
	return out
}

func (g *rig) controllers() map[string]spdk.NVMeController {
	g.t.Helper()
	cs, err := g.cl.GetControllers(context.Background(), "")
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[string]spdk.NVMeController{}
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

func (g *rig) observe() map[string]nodestate.VolumeStatus {
	var obs nodestate.Observed
	g.r.Observe(context.Background(), &obs)
	out := map[string]nodestate.VolumeStatus{}
	for _, v := range obs.Volumes {
		out[v.VolumeID] = v
	}
	return out
}

func mutatingOrder(e *spdktest.Emulator) []string {
	var out []string
	for _, m := range e.Methods() {
		if !spdktest.IsReadOnly(m) {
			out = append(out, m)
		}
	}
	return out
}

func sameMap(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestAttachHotplugDetachSim(t *testing.T) {
	emu := newEmu(t)
	g := newRig(t, emu, simDriver(t))
	ctx := context.Background()
	if err := g.r.Health(ctx); err != nil {
		t.Fatal(err)
	}

	// Boot volume (2 portals, multipath) and two data disks, both formats.
	all := desired(bootVol(), data1(), data2())
	n := g.mutations(func() { g.reconcile(all) })
	if got := emu.Calls("bdev_nvme_attach_controller"); got != 4 {
		t.Errorf("attach calls = %d, want 4 (2 portals + 1 + 1)", got)
	}
	// Every attach names this DPU's host NQN, the multipath mode and the
	// reconnect policy explicitly.
	for _, raw := range emu.Params("bdev_nvme_attach_controller") {
		var p map[string]any
		_ = json.Unmarshal(raw, &p)
		if p["hostnqn"] != hostNQN || p["multipath"] != "multipath" || p["ctrlr_loss_timeout_sec"] != float64(-1) ||
			p["reconnect_delay_sec"] != float64(5) || p["fast_io_fail_timeout_sec"] != float64(0) {
			t.Errorf("attach params %s", raw)
		}
	}
	if n == 0 {
		t.Fatal("no mutating call on first reconcile")
	}
	wantNS := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1"}
	if got := g.namespaces(pf0NQN); !sameMap(got, wantNS) {
		t.Fatalf("pf0 namespaces = %v, want %v", got, wantNS)
	}
	subs, _ := g.cl.GetSubsystems(ctx, pf0NQN)
	if l := subs[0].ListenAddresses; len(l) != 1 || l[0].Trtype != "TCP" || l[0].Traddr != "127.0.0.1" || l[0].Trsvcid != sim.DefaultStoragePort {
		t.Fatalf("listener = %+v", l)
	}
	// The host sees the volume's own uuid on the boot namespace.
	for _, ns := range subs[0].Namespaces {
		if ns.NSID == 1 && ns.UUID != bootID {
			t.Errorf("boot namespace uuid = %s", ns.UUID)
		}
	}
	if c := g.controllers()["idpu-"+bootID]; len(c.Ctrlrs) != 2 {
		t.Fatalf("boot controller paths = %+v", c)
	}
	obs := g.observe()
	b := obs[bootID]
	if b.State != nodestate.StateAttached || b.NSID != 1 || b.Controller != "idpu-"+bootID || b.Bdev != "idpu-"+bootID+"n1" ||
		b.Function == nil || !b.Function.Equal(nodestate.Function{PF: 0}) || len(b.Paths) != 2 || b.Paths[0].State != "enabled" || b.Paths[1].State != "enabled" {
		t.Fatalf("boot status = %+v", b)
	}
	if obs[data1ID].NSID != 2 || obs[data2ID].NSID != 3 || obs[data1ID].State != nodestate.StateAttached {
		t.Fatalf("data status = %+v", obs)
	}

	// Same state again, and a fresh reconciler (agent restart): no change.
	if n := g.mutations(func() { g.reconcile(all) }); n != 0 {
		t.Fatalf("unchanged reconcile made %d mutating calls: %v", n, emu.CallCounts())
	}
	g2 := newRig(t, emu, simDriver(t))
	if n := g2.mutations(func() { g2.reconcile(all) }); n != 0 {
		t.Fatalf("restarted agent made %d mutating calls: %v", n, emu.CallCounts())
	}
	if obs := g2.observe(); obs[data2ID].NSID != 3 || len(obs) != 3 {
		t.Fatalf("restarted agent observe = %+v", obs)
	}

	// Hot-unplug data disk 1: its namespace goes, then its controller; the
	// others keep their nsids.
	less := desired(bootVol(), data2())
	emu.ResetCalls()
	g.reconcile(less)
	if emu.Calls("nvmf_subsystem_remove_ns") != 1 || emu.Calls("bdev_nvme_detach_controller") != 1 || emu.MutatingCalls() != 2 {
		t.Fatalf("hot-unplug calls = %v", emu.CallCounts())
	}
	// Host side first: the namespace leaves the live controller, then the
	// backend goes.
	if seq := mutatingOrder(emu); strings.Join(seq, ",") != "nvmf_subsystem_remove_ns,bdev_nvme_detach_controller" {
		t.Fatalf("unplug order = %v", seq)
	}
	if got := g.namespaces(pf0NQN); !sameMap(got, map[int]string{1: wantNS[1], 3: wantNS[3]}) {
		t.Fatalf("after unplug = %v", got)
	}
	if _, ok := g.controllers()["idpu-"+data1ID]; ok {
		t.Fatal("data1 controller still attached")
	}
	if n := g.mutations(func() { g.reconcile(less) }); n != 0 {
		t.Fatalf("repeat unplug made %d mutating calls", n)
	}
	// Hot-plug it back: next free nsid, no other change.
	g.reconcile(all)
	if got := g.namespaces(pf0NQN); got[2] != wantNS[2] || len(got) != 3 {
		t.Fatalf("after re-plug = %v", got)
	}

	// Detach all, twice.
	g.reconcile(desired())
	if g.namespaces(pf0NQN) != nil || len(g.controllers()) != 0 {
		t.Fatalf("detach all left %v %v", g.namespaces(pf0NQN), g.controllers())
	}
	if n := g.mutations(func() { g.reconcile(desired()) }); n != 0 {
		t.Fatalf("repeat detach-all made %d mutating calls", n)
	}
	if obs := g.observe(); len(obs) != 0 {
		t.Fatalf("observe after detach all = %+v", obs)
	}
}

func TestSPDKRestartConverges(t *testing.T) {
	emu := newEmu(t)
	g := newRig(t, emu, simDriver(t))
	ctx := context.Background()
	all := desired(bootVol(), data1(), data2())
	// History: data2 first, then data1, so data1 holds nsid 3, which is not
	// the order of the list; a restarted SPDK must give the same nsids back.
	g.reconcile(desired(bootVol(), data2()))
	g.reconcile(all)
	before := g.namespaces(pf0NQN)
	if before[3] != "idpu-"+data1ID+"n1" {
		t.Fatalf("setup: %v", before)
	}

	sock := emu.Socket()
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.r.Health(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("health with SPDK down = %v", err)
	}
	if err := g.r.Reconcile(ctx, all); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("reconcile with SPDK down = %v", err)
	}
	if obs := g.observe(); obs[bootID].State != nodestate.StateError || obs[bootID].LastError == "" {
		t.Fatalf("observe with SPDK down = %+v", obs[bootID])
	}
	// A constructor with SPDK down still works.
	if _, err := storage.New(storage.Options{Client: spdk.NewUnix(sock, nil), Storage: storageOpts(), NodeUUID: nodeUUID,
		Driver: simDriver(t)(g.cl)}); err != nil {
		t.Fatal(err)
	}

	if err := emu.Start(sock); err != nil { // empty again
		t.Fatal(err)
	}
	if err := g.r.Health(ctx); err != nil {
		t.Fatal(err)
	}
	g.reconcile(all)
	if got := g.namespaces(pf0NQN); !sameMap(got, before) {
		t.Fatalf("after SPDK restart %v, want %v", got, before)
	}
	if n := g.mutations(func() { g.reconcile(all) }); n != 0 {
		t.Fatalf("converged state still mutated %d", n)
	}
}

func TestBadInputMakesNoCall(t *testing.T) {
	emu := newEmu(t)
	g := newRig(t, emu, simDriver(t))
	mod := func(f func(d map[string]any)) nodestate.Volume {
		v := bootVol()
		v.ConnectionInfo = newFormat(bootID, 4420)
		f(v.ConnectionInfo.Data)
		return v
	}
	cases := map[string]*nodestate.Desired{
		"bad target nqn":    desired(mod(func(d map[string]any) { d["target_nqn"] = "iqn.bogus" })),
		"unknown transport": desired(mod(func(d map[string]any) { d["portals"] = []any{[]any{"127.0.0.1", float64(4420), "fc"}} })),
		"port 0":            desired(mod(func(d map[string]any) { d["portals"] = []any{[]any{"127.0.0.1", float64(0), "tcp"}} })),
		"port 65536":        desired(mod(func(d map[string]any) { d["portals"] = []any{[]any{"127.0.0.1", float64(65536), "tcp"}} })),
		"missing target":    desired(mod(func(d map[string]any) { delete(d, "target_nqn") })),
		"no portals":        desired(mod(func(d map[string]any) { delete(d, "portals") })),
		"duplicate boot_index": desired(bootVol(), nodestate.Volume{VolumeID: data1ID, BootIndex: nodestate.IntPtr(0),
			ConnectionInfo: newFormat(data1ID, 4420)}),
		"boot on a vf": desired(nodestate.Volume{VolumeID: bootID, BootIndex: nodestate.IntPtr(0), ConnectionInfo: newFormat(bootID, 4420),
			Function: &nodestate.Function{PF: 0, VF: nodestate.IntPtr(1)}}),
		"pf the card lacks": desired(nodestate.Volume{VolumeID: data1ID, ConnectionInfo: newFormat(data1ID, 4420), Function: &nodestate.Function{PF: 7}}),
		"other host nqn": desired(mod(func(d map[string]any) {
			d["host_nqn"] = "nqn.2014-08.org.nvmexpress:uuid:deadbeef-0000-4000-8000-000000000000"
		})),
		"other node": {Generation: 1, NodeUUID: "00000000-0000-4000-8000-000000000001", Volumes: []nodestate.Volume{bootVol()}},
	}
	for name, d := range cases {
		emu.ResetCalls()
		err := g.r.Reconcile(context.Background(), d)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
		if verr := g.r.Validate(context.Background(), d); !errors.Is(verr, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v", name, verr)
		}
		if n := emu.TotalCalls(); n != 0 {
			t.Errorf("%s: %d SPDK calls: %v", name, n, emu.CallCounts())
		}
	}
	// A shared target NQN is refused as unsupported, also before any call.
	emu.ResetCalls()
	shared := data1()
	shared.ConnectionInfo = oldFormat(bootID, 4420)
	if err := g.r.Reconcile(context.Background(), desired(bootVol(), shared)); !errors.Is(err, errdefs.ErrNotSupported) || emu.TotalCalls() != 0 {
		t.Errorf("shared target: %v, %d calls", err, emu.TotalCalls())
	}
	// No host NQN configured: volumes are refused, an empty state is fine.
	cl := spdk.NewUnix(emu.Socket(), nil)
	defer cl.Close()
	opts := storageOpts()
	opts.HostNQN = ""
	r, err := storage.New(storage.Options{Client: cl, Storage: opts, NodeUUID: nodeUUID, Driver: simDriver(t)(cl)})
	if err != nil {
		t.Fatal(err)
	}
	emu.ResetCalls()
	if err := r.Reconcile(context.Background(), desired(bootVol())); !errors.Is(err, errdefs.ErrInvalidArgument) || emu.TotalCalls() != 0 {
		t.Fatalf("no host_nqn: %v, %d calls", err, emu.TotalCalls())
	}
	if err := r.Validate(context.Background(), desired()); err != nil {
		t.Fatal(err)
	}
}

func TestDegradedAndFailedVolumes(t *testing.T) {
	// Only port 4420 of the boot volume answers; the target does not know data1 (-5).
	emu := spdktest.StartT(t, spdktest.Options{Remotes: []spdktest.RemoteSubsystem{spdktest.CinderVolume(bootID, hostNQN, "4420")}})
	g := newRig(t, emu, simDriver(t))
	err := g.r.Reconcile(context.Background(), desired(bootVol(), data1()))
	if !errors.Is(err, errdefs.ErrStorage) || !strings.Contains(err.Error(), data1ID) || strings.Contains(err.Error(), "volume "+bootID) {
		t.Fatalf("err = %v", err)
	}
	obs := g.observe()
	b := obs[bootID]
	if b.State != nodestate.StateAttached || b.NSID != 1 || len(b.Paths) != 2 || b.Paths[0].State != "enabled" || b.Paths[1].State != "detached" {
		t.Fatalf("degraded boot = %+v", b)
	}
	if d := obs[data1ID]; d.State != nodestate.StateError || !strings.Contains(d.LastError, "Input/output error") || d.NSID != 0 {
		t.Fatalf("failed data1 = %+v", d)
	}
	// The missing path comes back once the target listens on it.
	emu.RemoveRemote(spdktest.CinderVolume(bootID, hostNQN).NQN)
	emu.AddRemote(spdktest.CinderVolume(bootID, hostNQN, "4420", "4421"))
	emu.AddRemote(spdktest.CinderVolume(data1ID, hostNQN, "4420"))
	g.reconcile(desired(bootVol(), data1()))
	if obs := g.observe(); obs[bootID].Paths[1].State != "enabled" || obs[data1ID].State != nodestate.StateAttached {
		t.Fatalf("recovered = %+v", obs)
	}
}

func TestExternalDetachIsRepaired(t *testing.T) {
	emu := newEmu(t)
	g := newRig(t, emu, simDriver(t))
	all := desired(bootVol(), data2())
	g.reconcile(all)
	// Someone detaches the boot backend: SPDK drops the exported namespace too.
	if err := g.cl.DetachController(context.Background(), spdk.DetachControllerParams{Name: "idpu-" + bootID}); err != nil {
		t.Fatal(err)
	}
	if ns := g.namespaces(pf0NQN); len(ns) != 1 {
		t.Fatalf("quirk: namespaces after backend detach = %v", ns)
	}
	g.reconcile(all)
	if ns := g.namespaces(pf0NQN); ns[1] != "idpu-"+bootID+"n1" || len(ns) != 2 {
		t.Fatalf("repaired = %v", ns)
	}
}

// TestRetargetedVolume: Cinder moved a volume to another subsystem (e.g. a
// migration): the backend is re-attached and the namespace comes back at the
// same nsid.
func TestRetargetedVolume(t *testing.T) {
	emu := newEmu(t)
	moved := "nqn.2010-10.org.openstack:volume-moved"
	r := spdktest.CinderVolume(data2ID, hostNQN, "4420")
	r.NQN = moved
	emu.AddRemote(r)
	g := newRig(t, emu, simDriver(t))
	g.reconcile(desired(bootVol(), data2()))
	v := data2()
	v.ConnectionInfo.Data["target_nqn"] = moved
	emu.ResetCalls()
	g.reconcile(desired(bootVol(), v))
	if ns := g.namespaces(pf0NQN); ns[2] != "idpu-"+data2ID+"n1" || len(ns) != 2 {
		t.Fatalf("namespaces = %v", ns)
	}
	if c := g.controllers()["idpu-"+data2ID]; c.Ctrlrs[0].Trid.Subnqn != moved {
		t.Fatalf("controller = %+v", c)
	}
	if seq := strings.Join(mutatingOrder(emu), ","); seq != "nvmf_subsystem_remove_ns,bdev_nvme_detach_controller,bdev_nvme_attach_controller,nvmf_subsystem_add_ns" {
		t.Fatalf("retarget calls = %s", seq)
	}

	// The same with SNAP (on the pre-created controller of PF 0).
	emu2 := newEmu(t)
	emu2.AddRemote(r)
	g2 := newRig(t, emu2, snapDriver(t))
	g2.reconcile(desired(bootVol(), data2()))
	emu2.ResetCalls()
	g2.reconcile(desired(bootVol(), v))
	if seq := strings.Join(mutatingOrder(emu2), ","); seq != "nvme_controller_detach_ns,nvme_namespace_destroy,bdev_nvme_detach_controller,bdev_nvme_attach_controller,nvme_namespace_create,nvme_controller_attach_ns" {
		t.Fatalf("SNAP retarget calls = %s", seq)
	}
	if st := g2.observe()[data2ID]; st.State != nodestate.StateAttached || st.NSID != 2 {
		t.Fatalf("SNAP retarget status = %+v", st)
	}
}

func TestSPDKNvmfVFIOUser(t *testing.T) {
	emu := newEmu(t)
	dir := t.TempDir()
	g := newRig(t, emu, func(cl *spdk.Client) drivers.StorageDriver {
		d, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: cl, NodeUUID: nodeUUID, VFIOUserDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
	g.reconcile(desired(bootVol()))
	subs, err := g.cl.GetSubsystems(context.Background(), pf0NQN)
	if err != nil {
		t.Fatal(err)
	}
	l := subs[0].ListenAddresses
	if len(l) != 1 || l[0].Trtype != "VFIOUSER" || l[0].Traddr != filepath.Join(dir, "pf0") {
		t.Fatalf("listener = %+v", l)
	}
	if fi, err := os.Stat(filepath.Join(dir, "pf0")); err != nil || !fi.IsDir() {
		t.Fatal("vfio-user dir not made")
	}
	if emu.Calls("nvmf_create_transport") != 1 {
		t.Fatalf("transport calls = %d", emu.Calls("nvmf_create_transport"))
	}
	// VFs are not emulated by this driver.
	v := data1()
	v.Function = &nodestate.Function{PF: 0, VF: nodestate.IntPtr(1)}
	if err := g.r.Validate(context.Background(), desired(v)); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("vf: %v", err)
	}
}

// An agent restart and an SPDK restart together (a DPU crash) must still give
// the running host every namespace back at its nsid: the reconciler's memory
// of nsids survives in NSIDFile.
func TestAgentAndSPDKRestartKeepNSIDs(t *testing.T) {
	emu := newEmu(t)
	file := filepath.Join(t.TempDir(), "nsids.json")
	mk := func() *storage.Reconciler { return persistent(t, emu, storageOpts(), file) }
	g := &rig{t: t, emu: emu, r: mk()}
	g.cl = spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = g.cl.Close() })
	all := desired(bootVol(), data1(), data2())
	g.reconcile(desired(bootVol(), data2()))
	g.reconcile(all) // data1 gets nsid 3, out of list order
	before := g.namespaces(pf0NQN)
	if before[3] != "idpu-"+data1ID+"n1" {
		t.Fatalf("setup: %v", before)
	}
	sock := emu.Socket()
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(sock); err != nil {
		t.Fatal(err)
	}
	g.r = mk() // the agent restarted too
	g.reconcile(all)
	if got := g.namespaces(pf0NQN); !sameMap(got, before) {
		t.Fatalf("after agent+SPDK restart %v, want %v", got, before)
	}
	// Without the file the same history renumbers the disks: the test can fail.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(sock); err != nil {
		t.Fatal(err)
	}
	g.r = mk()
	g.reconcile(all)
	if got := g.namespaces(pf0NQN); sameMap(got, before) {
		t.Fatalf("control: without remembered nsids the layout should differ, got %v", got)
	}
}

// A DPU crash after which one volume's target is briefly unreachable must
// not make the agent forget that volume's nsid: once the target is back, the
// host gets it at the nsid it knew, not the lowest free one.
func TestFailedVolumeKeepsRememberedNSID(t *testing.T) {
	emu := newEmu(t)
	file := filepath.Join(t.TempDir(), "nsids.json")
	mk := func() *storage.Reconciler { return persistent(t, emu, storageOpts(), file) }
	g := &rig{t: t, emu: emu, r: mk()}
	g.cl = spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = g.cl.Close() })
	// data2 takes nsid 2, data1 nsid 3; then data2 goes: data1 keeps 3.
	g.reconcile(desired(bootVol(), data2()))
	g.reconcile(desired(bootVol(), data2(), data1()))
	two := desired(bootVol(), data1())
	g.reconcile(two)
	if ns := g.namespaces(pf0NQN); ns[3] != "idpu-"+data1ID+"n1" || len(ns) != 2 {
		t.Fatalf("setup: %v", ns)
	}
	sock := emu.Socket()
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(sock); err != nil {
		t.Fatal(err)
	}
	emu.RemoveRemote(spdktest.CinderVolume(data1ID, hostNQN).NQN)
	g.r = mk() // the agent restarted too
	if err := g.r.Reconcile(context.Background(), two); err == nil || !strings.Contains(err.Error(), data1ID) {
		t.Fatalf("reconcile with data1's target gone = %v", err)
	}
	emu.AddRemote(spdktest.CinderVolume(data1ID, hostNQN, "4420"))
	g.r = mk() // and once more, so only the file carries the memory
	g.reconcile(two)
	if ns := g.namespaces(pf0NQN); ns[3] != "idpu-"+data1ID+"n1" || len(ns) != 2 {
		t.Fatalf("data1 after its target came back: %v, want it at nsid 3", ns)
	}
}
