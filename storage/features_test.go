package storage_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// iso is a fake image: "CD001" then filler, size bytes, not a multiple of
// 2048 unless size is.
func iso(size int, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, size)
	copy(b[min(32769, size):], "CD001")
	return b
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gzipB64(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// cdRig is a rig whose reconciler keeps images in its own dir and nsids in
// a file, so it can be rebuilt as after an agent restart.
func cdRig(t *testing.T, maxBytes int) (*rig, func() *storage.Reconciler, string) {
	t.Helper()
	emu := newEmu(t)
	dir := t.TempDir()
	o := storageOpts()
	o.ConfigDriveDir, o.ConfigDriveMaxBytes = filepath.Join(dir, "cd"), maxBytes
	mk := func() *storage.Reconciler { return persistent(t, emu, o, filepath.Join(dir, "nsids.json")) }
	g := &rig{t: t, emu: emu, r: mk()}
	g.cl = spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = g.cl.Close() })
	return g, mk, filepath.Join(dir, "cd")
}

// admit runs what the agent runs before persisting a state.
func (g *rig) admit(d *nodestate.Desired) error {
	if err := g.r.Validate(context.Background(), d); err != nil {
		return err
	}
	return g.r.Admit(context.Background(), d)
}

func withCD(d *nodestate.Desired, sha, data string) *nodestate.Desired {
	d.ConfigDrive = &nodestate.ConfigDrive{SHA256: sha, Data: data}
	return d
}

func TestConfigDriveAdmitExposeReplaceRemove(t *testing.T) {
	g, _, dir := cdRig(t, 1<<20)
	img := iso(40000, 0) // not a multiple of 2048: padded
	sha := shaOf(img)
	d := withCD(desired(bootVol(), data1()), sha, gzipB64(t, img))
	if err := g.admit(d); err != nil {
		t.Fatal(err)
	}
	if d.ConfigDrive.Data != "" {
		t.Fatal("data kept in the state to persist")
	}
	stored, err := os.ReadFile(filepath.Join(dir, sha+".iso"))
	if err != nil || len(stored) != 40960 || !bytes.Equal(stored[:40000], img) {
		t.Fatalf("stored image: %d bytes, %v", len(stored), err)
	}
	g.reconcile(d)
	bdev := storage.ConfigDriveBdevName(sha)
	if ns := g.namespaces(pf0NQN); ns[1] != "idpu-"+bootID+"n1" || ns[2] != "idpu-"+data1ID+"n1" || ns[3] != bdev {
		t.Fatalf("namespaces = %v", ns)
	}
	bs, err := g.cl.GetBdevs(context.Background(), bdev)
	if err != nil || bs[0].BlockSize != 2048 || bs[0].NumBlocks != 20 {
		t.Fatalf("aio bdev = %+v %v", bs, err)
	}
	var obs nodestate.Observed
	g.r.Observe(context.Background(), &obs)
	if c := obs.ConfigDrive; c == nil || c.SHA256 != sha || c.State != nodestate.StateAttached || c.NSID != 3 {
		t.Fatalf("observed config drive %+v", obs.ConfigDrive)
	}
	if n := g.mutations(func() { g.reconcile(d) }); n != 0 {
		t.Fatalf("unchanged config drive made %d mutating calls", n)
	}
	// A rebuilt image: new bdev (the host never sees content change under a
	// live namespace), same nsid.
	img2 := iso(4096, 1)
	d2 := withCD(desired(bootVol(), data1()), shaOf(img2), base64.StdEncoding.EncodeToString(img2)) // raw base64 too
	if err := g.admit(d2); err != nil {
		t.Fatal(err)
	}
	g.reconcile(d2)
	if ns := g.namespaces(pf0NQN); ns[3] != storage.ConfigDriveBdevName(shaOf(img2)) || len(ns) != 3 {
		t.Fatalf("after replace: %v", ns)
	}
	if _, err := g.cl.GetBdevs(context.Background(), bdev); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("old image's bdev not deleted: %v", err)
	}
	g.reconcile(desired(bootVol(), data1()))
	if ns := g.namespaces(pf0NQN); len(ns) != 2 {
		t.Fatalf("config drive still exposed: %v", ns)
	}
	obs = nodestate.Observed{}
	g.r.Observe(context.Background(), &obs)
	if obs.ConfigDrive != nil {
		t.Fatalf("observed config drive after removal: %+v", obs.ConfigDrive)
	}
	for _, b := range g.bdevNames() {
		if strings.HasPrefix(b, storage.ConfigDrivePrefix) {
			t.Fatalf("config drive bdev %s left", b)
		}
	}
}

func (g *rig) bdevNames() []string {
	g.t.Helper()
	bs, err := g.cl.GetBdevs(context.Background(), "")
	if err != nil {
		g.t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

func TestConfigDriveRefusedBeforeAnythingIsWritten(t *testing.T) {
	g, _, dir := cdRig(t, 64<<10)
	img := iso(40000, 0)
	big := iso(70000, 0)
	cases := map[string]*nodestate.ConfigDrive{
		"not base64":      {SHA256: shaOf(img), Data: "!!!"},
		"sha mismatch":    {SHA256: shaOf(big), Data: gzipB64(t, img)},
		"over the cap":    {SHA256: shaOf(big), Data: gzipB64(t, big)},
		"raw over cap":    {SHA256: shaOf(big), Data: base64.StdEncoding.EncodeToString(big)},
		"encoded too big": {SHA256: shaOf(img), Data: strings.Repeat("A", 200<<10)},
		"unknown sha":     {SHA256: shaOf(img)},
		"empty image":     {SHA256: shaOf(nil), Data: gzipB64(t, nil)},
	}
	for name, c := range cases {
		d := desired(bootVol())
		d.ConfigDrive = c
		err := g.admit(d)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
		if strings.Contains(name, "cap") && !strings.Contains(fmt.Sprint(err), "65536") {
			t.Errorf("%s: error does not name the cap: %v", name, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("refused images left files: %v", ents)
	}
	// Once held, a state naming the image by sha256 alone is accepted.
	d := withCD(desired(bootVol()), shaOf(img), gzipB64(t, img))
	if err := g.admit(d); err != nil {
		t.Fatal(err)
	}
	if err := g.admit(withCD(desired(bootVol()), shaOf(img), "")); err != nil {
		t.Fatalf("sha only, image held: %v", err)
	}
}

// The config drive keeps its nsid across an agent restart plus an SPDK
// restart even when the volumes around it changed order.
func TestConfigDriveNSIDSurvivesRestarts(t *testing.T) {
	g, mk, _ := cdRig(t, 1<<20)
	img := iso(4096, 0)
	d := withCD(desired(bootVol(), data2()), shaOf(img), gzipB64(t, img))
	if err := g.admit(d); err != nil {
		t.Fatal(err)
	}
	g.reconcile(d) // boot 1, data2 2, config drive 3
	d.Volumes = append(d.Volumes, data1())
	g.reconcile(d) // data1 4
	before := g.namespaces(pf0NQN)
	if before[3] != storage.ConfigDriveBdevName(shaOf(img)) {
		t.Fatalf("setup: %v", before)
	}
	sock := g.emu.Socket()
	if err := g.emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.emu.Start(sock); err != nil {
		t.Fatal(err)
	}
	g.r = mk()
	d.Volumes = []nodestate.Volume{bootVol(), data1(), data2()}
	g.reconcile(d)
	if got := g.namespaces(pf0NQN); !sameMap(got, before) {
		t.Fatalf("after restarts %v, want %v", got, before)
	}
}

func qosVol(specs map[string]any) nodestate.Volume {
	v := data1()
	v.ConnectionInfo.Data["qos_specs"] = specs
	return v
}

func (g *rig) limits(bdev string) spdk.QoSLimits {
	g.t.Helper()
	bs, err := g.cl.GetBdevs(context.Background(), bdev)
	if err != nil {
		g.t.Fatal(err)
	}
	return bs[0].RateLimits
}

func TestQoSAppliedOnceChangedRemovedReapplied(t *testing.T) {
	g := newRig(t, newEmu(t), simDriver(t))
	bdev := "idpu-" + data1ID + "n1"
	d := desired(bootVol(), qosVol(map[string]any{"total_iops_sec": "1500", "total_bytes_sec": float64(100 << 20), "read_bytes_sec": "1"}))
	g.reconcile(d)
	want := spdk.QoSLimits{RwIOsPerSec: 2000, RwMBytesPerSec: 100, RMBytesPerSec: 1}
	if got := g.limits(bdev); got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	var obs nodestate.Observed
	g.r.Observe(context.Background(), &obs)
	if q := obs.Volumes[1].QoS; q == nil || q.RwIOsPerSec != 2000 || q.RwMBytesPerSec != 100 {
		t.Fatalf("observed qos %+v", obs.Volumes[1].QoS)
	}
	// SPDK stored 2000 for 1500: the same spec must not call again.
	if n := g.mutations(func() { g.reconcile(d) }); n != 0 {
		t.Fatalf("unchanged qos made %d mutating calls", n)
	}
	d = desired(bootVol(), qosVol(map[string]any{"total_iops_sec": 5000}))
	if n := g.mutations(func() { g.reconcile(d) }); n != 1 || g.emu.Calls("bdev_set_qos_limit") != 1 {
		t.Fatalf("changed qos: %d mutating calls", n)
	}
	if got := g.limits(bdev); got != (spdk.QoSLimits{RwIOsPerSec: 5000}) {
		t.Fatalf("limits %+v after change", got)
	}
	// Limits are lost with the bdev (detach + re-attach): applied again.
	if err := g.cl.Call(context.Background(), "bdev_nvme_detach_controller", map[string]string{"name": "idpu-" + data1ID}, nil); err != nil {
		t.Fatal(err)
	}
	g.reconcile(d)
	if got := g.limits(bdev); got != (spdk.QoSLimits{RwIOsPerSec: 5000}) {
		t.Fatalf("limits %+v after re-attach", got)
	}
	g.reconcile(desired(bootVol(), data1()))
	if got := g.limits(bdev); got != (spdk.QoSLimits{}) {
		t.Fatalf("limits %+v after qos_specs went", got)
	}
}

func TestQoSRefusedAtValidation(t *testing.T) {
	g := newRig(t, newEmu(t), simDriver(t))
	for name, c := range map[string]struct {
		specs any
		kind  error
	}{
		"negative":   {map[string]any{"total_iops_sec": -5}, errdefs.ErrInvalidArgument},
		"word":       {map[string]any{"total_bytes_sec": "fast"}, errdefs.ErrInvalidArgument},
		"not object": {"1000", errdefs.ErrInvalidArgument},
		"read iops":  {map[string]any{"read_iops_sec": "100"}, errdefs.ErrNotSupported},
	} {
		v := data1()
		v.ConnectionInfo.Data["qos_specs"] = c.specs
		if err := g.r.Validate(context.Background(), desired(v)); !errors.Is(err, c.kind) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An online extend on the Cinder target reaches the DPU's bdev by itself (as
// real SPDK does, c-resize.jsonl); get_state must show the new size at once,
// without waiting for a reconcile.
func TestSizeFollowsRemoteResize(t *testing.T) {
	target := spdktest.StartT(t, spdktest.Options{})
	tc := spdk.NewUnix(target.Socket(), nil)
	t.Cleanup(func() { _ = tc.Close() })
	ctx := context.Background()
	if err := spdktest.Run(ctx, tc, append(spdktest.LvstoreSetup(128), spdktest.LvolExport(data1ID, 32, "4430")...)); err != nil {
		t.Fatal(err)
	}
	dpu := spdktest.StartT(t, spdktest.Options{Peers: []*spdktest.Emulator{target}})
	g := newRig(t, dpu, simDriver(t))
	v := nodestate.Volume{VolumeID: data1ID, ConnectionInfo: newFormat(data1ID, 4430)}
	g.reconcile(desired(v))
	size := func() int64 {
		var obs nodestate.Observed
		g.r.Observe(ctx, &obs)
		return obs.Volumes[0].SizeBytes
	}
	if s := size(); s != 32<<20 {
		t.Fatalf("size %d, want 32 MiB", s)
	}
	if err := tc.Call(ctx, "bdev_lvol_resize", map[string]any{"name": "cinder-volumes/volume-" + data1ID, "size_in_mib": 64}, nil); err != nil {
		t.Fatal(err)
	}
	if s := size(); s != 64<<20 {
		t.Fatalf("size %d after extend, want 64 MiB", s)
	}
	// Shrinking an exported lvol is refused by the target (and the DPU keeps the size).
	err := tc.Call(ctx, "bdev_lvol_resize", map[string]any{"name": "cinder-volumes/volume-" + data1ID, "size_in_mib": 16}, nil)
	if !spdk.HasCode(err, -32602) || size() != 64<<20 {
		t.Fatalf("shrink while exported: %v, size %d", err, size())
	}
}

// The Cinder target removes the volume's namespace and adds it back (as an
// offline shrink does, c-resize.jsonl lines 44-53): the DPU's bdev and pf0's
// namespace go with it while the controller stays, and when it is back pf0
// does not re-add it by itself. The reconcile must put it back at the nsid
// the host knew, with the new size, without re-attaching the controller.
func TestNamespaceRemovedAndReaddedOnTheTarget(t *testing.T) {
	target := spdktest.StartT(t, spdktest.Options{})
	tc := spdk.NewUnix(target.Socket(), nil)
	t.Cleanup(func() { _ = tc.Close() })
	ctx := context.Background()
	if err := spdktest.Run(ctx, tc, append(spdktest.LvstoreSetup(128),
		append(spdktest.LvolExport(data1ID, 32, "4430"), spdktest.LvolExport(data2ID, 32, "4430")...)...)); err != nil {
		t.Fatal(err)
	}
	dpu := spdktest.StartT(t, spdktest.Options{Peers: []*spdktest.Emulator{target}})
	g := newRig(t, dpu, simDriver(t))
	all := desired(nodestate.Volume{VolumeID: data1ID, ConnectionInfo: newFormat(data1ID, 4430)},
		nodestate.Volume{VolumeID: data2ID, ConnectionInfo: newFormat(data2ID, 4430)})
	g.reconcile(all)
	before := g.namespaces(pf0NQN)
	if len(before) != 2 {
		t.Fatalf("namespaces = %v", before)
	}
	nsid := 0
	for n, b := range before {
		if b == "idpu-"+data1ID+"n1" {
			nsid = n
		}
	}
	nqn := "nqn.2010-10.org.openstack:volume-" + data1ID
	if err := tc.Call(ctx, "nvmf_subsystem_remove_ns", map[string]any{"nqn": nqn, "nsid": 1}, nil); err != nil {
		t.Fatal(err)
	}
	if ns := g.namespaces(pf0NQN); len(ns) != 1 || ns[nsid] != "" {
		t.Fatalf("after the target removed its namespace: %v", ns)
	}
	// Gone from the target: the volume cannot be served, and says so.
	if err := g.r.Reconcile(ctx, all); err == nil {
		t.Fatal("reconcile without the remote namespace succeeded")
	}
	if st := g.observe()[data1ID]; st.State != nodestate.StateError {
		t.Fatalf("volume without its remote namespace: %+v", st)
	}
	if err := tc.Call(ctx, "bdev_lvol_resize", map[string]any{"name": "cinder-volumes/volume-" + data1ID, "size_in_mib": 16}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tc.Call(ctx, "nvmf_subsystem_add_ns", map[string]any{"nqn": nqn,
		"namespace": map[string]any{"bdev_name": "cinder-volumes/volume-" + data1ID, "uuid": data1ID, "nsid": 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if ns := g.namespaces(pf0NQN); len(ns) != 1 {
		t.Fatalf("pf0 re-added the namespace by itself: %v", ns)
	}
	attaches := dpu.Calls("bdev_nvme_attach_controller")
	g.reconcile(all)
	if ns := g.namespaces(pf0NQN); !sameMap(ns, before) {
		t.Fatalf("namespaces after the target re-added it = %v, want %v", ns, before)
	}
	if n := dpu.Calls("bdev_nvme_attach_controller") - attaches; n != 0 {
		t.Fatalf("%d re-attaches: the controller was still there", n)
	}
	if st := g.observe()[data1ID]; st.State != nodestate.StateAttached || st.SizeBytes != 16<<20 || st.NSID != nsid {
		t.Fatalf("volume after the namespace came back: %+v", st)
	}
}
