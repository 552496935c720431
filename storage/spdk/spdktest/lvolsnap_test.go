package spdktest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// lvolBdev is an lvol's bdev_get_bdevs entry with every driver_specific
// field vbdev_lvol_dump_info_json writes for a non-esnap lvol.
type lvolBdev struct {
	Name           string   `json:"name"`
	Aliases        []string `json:"aliases"`
	NumBlocks      int64    `json:"num_blocks"`
	DriverSpecific struct {
		Lvol struct {
			LvolStoreUUID        string   `json:"lvol_store_uuid"`
			BaseBdev             string   `json:"base_bdev"`
			ThinProvision        bool     `json:"thin_provision"`
			NumAllocatedClusters int64    `json:"num_allocated_clusters"`
			Snapshot             bool     `json:"snapshot"`
			Clone                bool     `json:"clone"`
			BaseSnapshot         *string  `json:"base_snapshot"`
			Clones               []string `json:"clones"`
			EsnapClone           bool     `json:"esnap_clone"`
		} `json:"lvol"`
	} `json:"driver_specific"`
}

// cinderName is the Cinder SPDK driver's _get_spdk_volume_name: the bdev
// whose alias contains the Cinder name.
func cinderName(t *testing.T, c *spdk.Client, name string) string {
	t.Helper()
	var bdevs []lvolBdev
	call(t, c, "bdev_get_bdevs", nil, &bdevs)
	for _, b := range bdevs {
		for _, a := range b.Aliases {
			if strings.Contains(a, name) {
				return b.Name
			}
		}
	}
	t.Fatalf("no bdev aliased %q", name)
	return ""
}

func lvolInfo(t *testing.T, c *spdk.Client, name string) lvolBdev {
	t.Helper()
	var bdevs []lvolBdev
	call(t, c, "bdev_get_bdevs", map[string]any{"name": name}, &bdevs)
	if len(bdevs) != 1 {
		t.Fatalf("bdev_get_bdevs %s: %+v", name, bdevs)
	}
	return bdevs[0]
}

func freeClusters(t *testing.T, c *spdk.Client) int64 {
	t.Helper()
	var lvs []lvsInfo
	call(t, c, "bdev_lvol_get_lvstores", nil, &lvs)
	return lvs[0].FreeClusters
}

func callErrMsg(t *testing.T, c *spdk.Client, method string, params any, code int, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Call(ctx, method, params, nil)
	var e *spdk.Error
	if !errors.As(err, &e) || e.Code != code || e.Message != msg {
		t.Fatalf("%s %v: want %d %q, got %v", method, params, code, msg, err)
	}
}

// newLvs makes a 2 GiB malloc lvstore "lvs0": 511 data clusters of 4 MiB.
func newLvs(t *testing.T, c *spdk.Client) string {
	t.Helper()
	var s, lvsUUID string
	call(t, c, "bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 2 * 1024 * 256, "block_size": 4096}, &s)
	call(t, c, "bdev_lvol_create_lvstore", map[string]any{"bdev_name": "Malloc0", "lvs_name": "lvs0"}, &lvsUUID)
	return lvsUUID
}

// TestLvolSnapshotCinderSequence sends what cinder/volume/drivers/spdk.py
// sends for create_snapshot, create_volume_from_snapshot and
// delete_snapshot, and checks the lvol tree and the space after each step.
func TestLvolSnapshotCinderSequence(t *testing.T) {
	_, c := startLvolEmu(t, Options{})
	lvsUUID := newLvs(t, c)
	var vol1 string
	call(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size_in_mib": 512}, &vol1)
	if got := freeClusters(t, c); got != 511-128 {
		t.Fatalf("free after create: %d", got)
	}

	// create_snapshot: bdev_lvol_snapshot on the volume's bdev name.
	src := cinderName(t, c, "volume-1")
	var snap string
	call(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": src, "snapshot_name": "snapshot-1"}, &snap)
	if snap == "" || snap == vol1 || cinderName(t, c, "snapshot-1") != snap {
		t.Fatalf("snapshot bdev %q (volume %q)", snap, vol1)
	}
	s := lvolInfo(t, c, snap).DriverSpecific.Lvol
	v := lvolInfo(t, c, vol1).DriverSpecific.Lvol
	if !s.Snapshot || s.Clone || !s.ThinProvision || s.NumAllocatedClusters != 128 || !reflect.DeepEqual(s.Clones, []string{"volume-1"}) ||
		s.BaseSnapshot != nil || s.LvolStoreUUID != lvsUUID || s.BaseBdev != "Malloc0" {
		t.Fatalf("snapshot after bdev_lvol_snapshot: %+v", s)
	}
	if v.Snapshot || !v.Clone || !v.ThinProvision || v.NumAllocatedClusters != 0 || v.BaseSnapshot == nil || *v.BaseSnapshot != "snapshot-1" {
		t.Fatalf("volume after bdev_lvol_snapshot: %+v", v)
	}
	if got := freeClusters(t, c); got != 511-128 {
		t.Fatalf("free after snapshot: %d", got)
	}
	if lvolInfo(t, c, snap).NumBlocks != 128*1024 {
		t.Fatalf("snapshot size")
	}
	call(t, c, "bdev_lvol_inflate", map[string]any{"name": src}, nil)
	v = lvolInfo(t, c, vol1).DriverSpecific.Lvol
	s = lvolInfo(t, c, snap).DriverSpecific.Lvol
	if v.Clone || v.ThinProvision || v.NumAllocatedClusters != 128 || v.BaseSnapshot != nil || s.Clones != nil || !s.Snapshot {
		t.Fatalf("after inflate: volume %+v snapshot %+v", v, s)
	}
	if got := freeClusters(t, c); got != 511-256 {
		t.Fatalf("free after inflate: %d", got)
	}

	// create_volume_from_snapshot: clone, inflate, resize when bigger.
	var vol2 string
	call(t, c, "bdev_lvol_clone", map[string]any{"clone_name": "volume-2", "snapshot_name": cinderName(t, c, "snapshot-1")}, &vol2)
	if cinderName(t, c, "volume-2") != vol2 {
		t.Fatalf("clone result %q is not its bdev name", vol2)
	}
	v = lvolInfo(t, c, vol2).DriverSpecific.Lvol
	if !v.Clone || !v.ThinProvision || v.NumAllocatedClusters != 0 || *v.BaseSnapshot != "snapshot-1" {
		t.Fatalf("clone: %+v", v)
	}
	if got := lvolInfo(t, c, snap).DriverSpecific.Lvol.Clones; !reflect.DeepEqual(got, []string{"volume-2"}) {
		t.Fatalf("snapshot clones %v", got)
	}
	call(t, c, "bdev_lvol_inflate", map[string]any{"name": vol2}, nil)
	call(t, c, "bdev_lvol_resize", map[string]any{"name": vol2, "size_in_mib": 768}, nil)
	if b := lvolInfo(t, c, vol2); b.NumBlocks != 192*1024 || b.DriverSpecific.Lvol.Clone || b.DriverSpecific.Lvol.ThinProvision {
		t.Fatalf("inflated, resized clone: %+v", b)
	}
	if got := freeClusters(t, c); got != 511-128-128-192 {
		t.Fatalf("free after volume from snapshot: %d", got)
	}

	// Two clones left thin: the snapshot cannot go until they are inflated.
	var vol3, vol4 string
	call(t, c, "bdev_lvol_clone", map[string]any{"clone_name": "volume-3", "snapshot_name": snap}, &vol3)
	call(t, c, "bdev_lvol_clone", map[string]any{"clone_name": "volume-4", "snapshot_name": snap}, &vol4)
	callErrMsg(t, c, "bdev_lvol_delete", map[string]any{"name": snap}, -32603, "Operation not permitted")

	// delete_snapshot: inflate every clone, then delete.
	info := lvolInfo(t, c, snap)
	if !reflect.DeepEqual(info.DriverSpecific.Lvol.Clones, []string{"volume-3", "volume-4"}) {
		t.Fatalf("clones %v", info.DriverSpecific.Lvol.Clones)
	}
	// Inflating needs the clones' full size: 128 > 63 free clusters.
	callErrMsg(t, c, "bdev_lvol_inflate", map[string]any{"name": vol3}, -32602, "No space left on device")
	if l := lvolInfo(t, c, vol3).DriverSpecific.Lvol; !l.Clone || !l.ThinProvision {
		t.Fatalf("failed inflate changed the clone: %+v", l)
	}
	call(t, c, "bdev_lvol_delete", map[string]any{"name": vol2}, nil)
	call(t, c, "bdev_lvol_delete", map[string]any{"name": vol1}, nil)
	for _, cl := range info.DriverSpecific.Lvol.Clones {
		call(t, c, "bdev_lvol_inflate", map[string]any{"name": cinderName(t, c, cl)}, nil)
	}
	call(t, c, "bdev_lvol_delete", map[string]any{"name": cinderName(t, c, "snapshot-1")}, nil)
	callErr(t, c, "bdev_get_bdevs", map[string]any{"name": snap}, -19)
	for _, id := range []string{vol3, vol4} {
		if l := lvolInfo(t, c, id).DriverSpecific.Lvol; l.Clone || l.ThinProvision || l.NumAllocatedClusters != 128 {
			t.Fatalf("clone after snapshot delete: %+v", l)
		}
	}
	if got := freeClusters(t, c); got != 511-2*128 {
		t.Fatalf("free at the end: %d", got)
	}
}

// TestLvolSnapshotErrors: each refusal with the code and text SPDK v24.09's
// handlers send, and no state change after one.
func TestLvolSnapshotErrors(t *testing.T) {
	_, c := startLvolEmu(t, Options{})
	lvsUUID := newLvs(t, c)
	var vol, other, snap string
	call(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size_in_mib": 64}, &vol)
	call(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-2", "uuid": lvsUUID, "size_in_mib": 64}, &other)

	decode := "spdk_json_decode_object failed"
	for _, tc := range []struct {
		method string
		params map[string]any
	}{
		{"bdev_lvol_snapshot", map[string]any{"lvol_name": vol, "snapshot_name": "s", "thin": true}},
		{"bdev_lvol_snapshot", map[string]any{"lvol_name": vol}},
		{"bdev_lvol_snapshot", map[string]any{"snapshot_name": "s"}},
		{"bdev_lvol_clone", map[string]any{"clone_name": "c"}},
		{"bdev_lvol_clone", map[string]any{"snapshot_name": vol, "clone_name": "c", "lvs_name": "lvs0"}},
		{"bdev_lvol_inflate", map[string]any{"name": vol, "async": true}},
		{"bdev_lvol_inflate", map[string]any{}},
		{"bdev_lvol_decouple_parent", map[string]any{"lvol_name": vol}},
	} {
		callErrMsg(t, c, tc.method, tc.params, -32603, decode)
	}

	// Unknown bdev, or a bdev that is not an lvol: -ENODEV before anything.
	for _, m := range []struct {
		method string
		params map[string]any
	}{
		{"bdev_lvol_snapshot", map[string]any{"lvol_name": "nope", "snapshot_name": "s"}},
		{"bdev_lvol_snapshot", map[string]any{"lvol_name": "Malloc0", "snapshot_name": "s"}},
		{"bdev_lvol_clone", map[string]any{"snapshot_name": "nope", "clone_name": "c"}},
		{"bdev_lvol_inflate", map[string]any{"name": "nope"}},
		{"bdev_lvol_decouple_parent", map[string]any{"name": "Malloc0"}},
	} {
		callErrMsg(t, c, m.method, m.params, -19, "No such device")
	}

	// Name checks run in the lvol operation: -32602 with the errno text.
	callErrMsg(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": vol, "snapshot_name": "volume-2"}, -32602, "File exists")
	callErrMsg(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": vol, "snapshot_name": ""}, -32602, "Invalid argument")
	callErrMsg(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": vol, "snapshot_name": strings.Repeat("x", 64)}, -32602, "Invalid argument")
	// Clone of a writable lvol: the blobstore wants a read-only parent.
	callErrMsg(t, c, "bdev_lvol_clone", map[string]any{"snapshot_name": vol, "clone_name": "c"}, -32602, "Invalid argument")
	// Decouple of an lvol with no parent.
	callErrMsg(t, c, "bdev_lvol_decouple_parent", map[string]any{"name": vol}, -32602, "Invalid argument")
	// Inflate of a thick lvol has nothing to do.
	call(t, c, "bdev_lvol_inflate", map[string]any{"name": vol}, nil)
	if got := freeClusters(t, c); got != 511-32 {
		t.Fatalf("free after refusals: %d", got)
	}

	call(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": "lvs0/volume-1", "snapshot_name": "snap"}, &snap)
	// clone_name is optional in the decoder but the name check wants one.
	callErrMsg(t, c, "bdev_lvol_clone", map[string]any{"snapshot_name": snap}, -32602, "Invalid argument")
	callErrMsg(t, c, "bdev_lvol_clone", map[string]any{"snapshot_name": snap, "clone_name": "volume-1"}, -32602, "File exists")
	// A snapshot is read-only: no snapshot of it.
	callErrMsg(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": snap, "snapshot_name": "s2"}, -32602, "Invalid argument")
	if got := lvolInfo(t, c, snap).DriverSpecific.Lvol.Clones; !reflect.DeepEqual(got, []string{"volume-1"}) {
		t.Fatalf("clones after refusals: %v", got)
	}
}

// TestLvolDecoupleAndMerge: decouple_parent keeps a clone thin but takes the
// parent's clusters; deleting a snapshot with a single clone merges it into
// that clone instead of refusing.
func TestLvolDecoupleAndMerge(t *testing.T) {
	_, c := startLvolEmu(t, Options{})
	lvsUUID := newLvs(t, c)
	var vol, snap, cl string
	call(t, c, "bdev_lvol_create", map[string]any{"lvol_name": "volume-1", "uuid": lvsUUID, "size_in_mib": 64}, &vol)
	call(t, c, "bdev_lvol_snapshot", map[string]any{"lvol_name": vol, "snapshot_name": "snap"}, &snap)
	call(t, c, "bdev_lvol_clone", map[string]any{"snapshot_name": "lvs0/snap", "clone_name": "clone-1"}, &cl)

	call(t, c, "bdev_lvol_decouple_parent", map[string]any{"name": cl}, nil)
	l := lvolInfo(t, c, cl).DriverSpecific.Lvol
	if l.Clone || !l.ThinProvision || l.NumAllocatedClusters != 16 || l.BaseSnapshot != nil {
		t.Fatalf("decoupled clone: %+v", l)
	}
	if got := freeClusters(t, c); got != 511-32 {
		t.Fatalf("free after decouple: %d", got)
	}

	// volume-1 is now the snapshot's only clone: deleting the snapshot hands
	// its clusters to volume-1, which stops being a clone.
	call(t, c, "bdev_lvol_delete", map[string]any{"name": snap}, nil)
	l = lvolInfo(t, c, vol).DriverSpecific.Lvol
	if l.Clone || !l.ThinProvision || l.NumAllocatedClusters != 16 || l.BaseSnapshot != nil {
		t.Fatalf("volume after merging its snapshot: %+v", l)
	}
	if got := freeClusters(t, c); got != 511-32 {
		t.Fatalf("free after merge: %d", got)
	}
}
