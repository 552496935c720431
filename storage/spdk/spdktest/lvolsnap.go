package spdktest

// Lvol snapshots and clones as SPDK v24.09 keeps them (lib/blob, lib/lvol,
// module/bdev/lvol): a snapshot is a new read-only, thin-provisioned lvol
// that takes the source's clusters; the source becomes a thin clone of it
// with nothing allocated. bdev_lvol_clone makes another thin clone of a
// snapshot; bdev_lvol_inflate allocates every cluster of an lvol and cuts it
// from its parent; bdev_lvol_decouple_parent copies only what the parent
// holds and keeps the lvol thin. Errors found before the lvol operation
// starts come back with their own code (-19 for an unknown bdev); errors of
// the operation itself come back as -32602 with the errno text, as for
// bdev_lvol_resize (c-resize.jsonl) — bdev_lvol_delete's as -32603.

import (
	"encoding/json"
	"sort"
)

// lvolNameMax is SPDK_LVOL_NAME_MAX: names must be shorter.
const lvolNameMax = 64

// verifyName is lvs_verify_lvol_name.
func (l *lvstore) verifyName(name *string) error {
	if name == nil || *name == "" || len(*name) >= lvolNameMax {
		return errf(-32602, "Invalid argument")
	}
	for _, v := range l.lvols {
		if v.name == *name {
			return errf(-32602, "File exists")
		}
	}
	return nil
}

// clonesOf lists the bdev names of the clones of snapshot snap, oldest first
// (the blobstore appends to its clone list).
func (l *lvstore) clonesOf(snap string) []string {
	var out []string
	for id, v := range l.lvols {
		if v.parent == snap {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return l.lvols[out[i]].seq < l.lvols[out[j]].seq })
	return out
}

// lvolArg decodes {"name"} (bdev_lvol_inflate's decoder, shared with
// bdev_lvol_decouple_parent) and finds the lvol; the caller holds e.mu.
func lvolArg(e *Emulator, params json.RawMessage) (*lvstore, *lvol, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if err := decodeStrict(params, &p); err != nil || p.Name == nil {
		return nil, nil, errDecode
	}
	l, b := e.st.lvolOf(*p.Name)
	if b == nil {
		return nil, nil, errENODEV
	}
	return l, l.lvols[b.name], nil
}

func bdevLvolSnapshot(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		LvolName     *string `json:"lvol_name"`
		SnapshotName *string `json:"snapshot_name"`
	}
	if err := decodeStrict(params, &p); err != nil || p.LvolName == nil || p.SnapshotName == nil {
		return nil, errDecode
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	l, b := e.st.lvolOf(*p.LvolName)
	if b == nil {
		return nil, errENODEV
	}
	if err := l.verifyName(p.SnapshotName); err != nil {
		return nil, err
	}
	src := l.lvols[b.name]
	if src.snapshot {
		// The blobstore refuses to snapshot a read-only blob.
		return nil, errf(-32602, "Invalid argument")
	}
	snap := &lvol{name: *p.SnapshotName, clusters: src.clusters, thin: true, alloc: src.allocated(),
		snapshot: true, parent: src.parent}
	id := e.st.addLvol(l, snap)
	src.thin, src.alloc, src.parent = true, 0, id
	return id, nil
}

func bdevLvolClone(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		SnapshotName *string `json:"snapshot_name"`
		CloneName    *string `json:"clone_name"` // optional in the decoder, required by the name check
	}
	if err := decodeStrict(params, &p); err != nil || p.SnapshotName == nil {
		return nil, errDecode
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	l, b := e.st.lvolOf(*p.SnapshotName)
	if b == nil {
		return nil, errENODEV
	}
	if err := l.verifyName(p.CloneName); err != nil {
		return nil, err
	}
	snap := l.lvols[b.name]
	if !snap.snapshot {
		// "Clone not from read-only blob".
		return nil, errf(-32602, "Invalid argument")
	}
	return e.st.addLvol(l, &lvol{name: *p.CloneName, clusters: snap.clusters, thin: true, parent: b.name}), nil
}

func bdevLvolInflate(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, v, err := lvolArg(e, params)
	if err != nil {
		return nil, err
	}
	if !v.thin {
		return true, nil // nothing to allocate
	}
	if v.clusters-v.alloc > l.free() {
		return nil, errf(-32602, "No space left on device")
	}
	v.thin, v.alloc, v.parent = false, 0, ""
	return true, nil
}

func bdevLvolDecoupleParent(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, v, err := lvolArg(e, params)
	if err != nil {
		return nil, err
	}
	if v.parent == "" {
		return nil, errf(-32602, "Invalid argument") // no parent to decouple from
	}
	par := l.lvols[v.parent]
	n := min(v.clusters, v.alloc+par.allocated())
	if n-v.alloc > l.free() {
		return nil, errf(-32602, "No space left on device")
	}
	v.alloc, v.parent = n, par.parent
	return true, nil
}

// mergeSnapshot is vbdev_lvol_destroy's guard: a snapshot with more
// than one clone stays; with exactly one, the blobstore merges it into the
// clone, which takes its clusters and its parent.
func (l *lvstore) mergeSnapshot(name string) error {
	clones := l.clonesOf(name)
	if len(clones) > 1 {
		return errf(-32603, "Operation not permitted")
	}
	if len(clones) == 1 {
		v, c := l.lvols[name], l.lvols[clones[0]]
		c.alloc = min(c.clusters, c.alloc+v.allocated())
		c.parent = v.parent
	}
	return nil
}
