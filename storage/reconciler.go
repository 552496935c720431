// Package storage is the storage reconciler: it makes SPDK hold exactly the
// desired Cinder volumes — a bdev_nvme controller per volume (backend) and a
// namespace on the emulated NVMe controller of the volume's host function
// (via the DPU driver) — and reports what it saw.
package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// ConfigDriveBdev is the AIO bdev of the config-drive image.
const ConfigDriveBdev = backend.Prefix + "cfgdrive"

// Options build a Reconciler.
type Options struct {
	Client   *spdk.Client
	Storage  config.StorageOpts
	NodeUUID string
	Driver   drivers.StorageDriver
	Logger   *zap.Logger
	// NSIDFile, when set, persists where each volume was exposed, so that
	// after an agent restart *and* an SPDK restart every namespace still
	// comes back at the nsid the running host knows.
	NSIDFile string
	// Parallel bounds how many volumes are attached at once (default 8):
	// a real attach takes 60-170 ms, mostly waiting for the target.
	Parallel int
}

// Reconciler implements agent.Reconciler for storage.
type Reconciler struct {
	o   Options
	be  *backend.Backend
	log *zap.Logger

	mu          sync.Mutex // guards status, lastNSID and configDrive
	status      []state.VolumeStatus
	configDrive string
	// lastNSID remembers where each volume was exposed, so that a restarted
	// (empty) SPDK gets every namespace back at the nsid the host knew.
	lastNSID map[string]int
}

// New checks the options. It makes no SPDK call and does not fail when SPDK
// is down: Health reports that, and the agent keeps reconciling.
func New(o Options) (*Reconciler, error) {
	if o.Client == nil || o.Driver == nil {
		return nil, fmt.Errorf("%w: storage: Client and Driver are required", errdefs.ErrInvalidArgument)
	}
	if !state.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: storage: node uuid %q", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	be, err := backend.New(backend.Options{
		Client: o.Client, HostNQN: o.Storage.HostNQN, Multipath: o.Storage.Multipath,
		CtrlrLossTimeoutSec: o.Storage.CtrlrLossTimeoutSec, ReconnectDelaySec: o.Storage.ReconnectDelaySec,
		FastIOFailTimeoutSec: o.Storage.FastIOFailTimeoutSec, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	r := &Reconciler{o: o, be: be, log: o.Logger.With(zap.String("component", "storage"))}
	r.lastNSID = r.loadNSIDs()
	return r, nil
}

// loadNSIDs reads NSIDFile; a missing or unreadable file means no memory
// (nsids are then allocated afresh), never a failure to start.
func (r *Reconciler) loadNSIDs() map[string]int {
	if r.o.NSIDFile == "" {
		return nil
	}
	b, err := os.ReadFile(r.o.NSIDFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var m map[string]int
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		r.log.Warn("ignoring the remembered nsids", zap.String("file", r.o.NSIDFile), zap.Error(err))
		return nil
	}
	return m
}

func (r *Reconciler) saveNSIDs(m map[string]int) {
	if r.o.NSIDFile == "" {
		return
	}
	b, err := json.Marshal(m)
	if err == nil {
		err = atomicfile.Write(r.o.NSIDFile, b, 0o600)
	}
	if err != nil {
		r.log.Warn("could not persist the nsids", zap.String("file", r.o.NSIDFile), zap.Error(err))
	}
}

// Name implements agent.Reconciler.
func (r *Reconciler) Name() string { return "storage" }

// SetConfigDrive exposes the image file path (read-only, bdev_aio) as a
// namespace on PF 0 from the next Reconcile on; "" removes it.
func (r *Reconciler) SetConfigDrive(path string) {
	r.mu.Lock()
	r.configDrive = path
	r.mu.Unlock()
}

var pf0 = state.Function{PF: 0}

func fnKey(f state.Function) string { return drivers.FunctionName(f) }

// item is one thing to expose: a volume or the config drive.
type item struct {
	volumeID string // "" for the config drive
	target   nvmeof.Target
	ctrl     string // bdev_nvme controller ("" for the config drive)
	fn       state.Function
	boot     bool
	file     string // config drive image

	bdev string
	nsid int
	err  error
}

// Validate implements agent.Reconciler: everything that can be checked
// without SPDK.
func (r *Reconciler) Validate(_ context.Context, d *state.Desired) error {
	_, err := r.plan(d)
	return err
}

func (r *Reconciler) plan(d *state.Desired) ([]*item, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if d.NodeUUID != "" && !strings.EqualFold(d.NodeUUID, r.o.NodeUUID) {
		return nil, fmt.Errorf("%w: desired state is for node %s, this agent serves %s", errdefs.ErrInvalidArgument, d.NodeUUID, r.o.NodeUUID)
	}
	if len(d.Volumes) > 0 {
		if err := r.be.CheckConfig(); err != nil {
			return nil, err
		}
	}
	var items []*item
	byNQN := map[string]string{}
	for _, v := range d.Volumes {
		t, err := nvmeof.Parse(v.ConnectionInfo.Data)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.VolumeID, err)
		}
		if t.HostNQN != "" && t.HostNQN != r.o.Storage.HostNQN {
			return nil, fmt.Errorf("%w: volume %s: Cinder exported it to host NQN %s, but this DPU is %s",
				errdefs.ErrInvalidArgument, v.VolumeID, t.HostNQN, r.o.Storage.HostNQN)
		}
		if other, dup := byNQN[t.NQN]; dup {
			return nil, fmt.Errorf("%w: volumes %s and %s share target %s (one subsystem per volume is supported)",
				errdefs.ErrNotSupported, other, v.VolumeID, t.NQN)
		}
		byNQN[t.NQN] = v.VolumeID
		fn := pf0
		if v.Function != nil {
			fn = *v.Function
		}
		if err := r.o.Driver.ValidateFunction(fn); err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.VolumeID, err)
		}
		boot := v.BootIndex != nil && *v.BootIndex == 0
		if boot && !fn.Equal(pf0) {
			return nil, fmt.Errorf("%w: boot volume %s must be on pf 0 (nsid 1 of the boot controller)", errdefs.ErrInvalidArgument, v.VolumeID)
		}
		id := strings.ToLower(v.VolumeID)
		items = append(items, &item{volumeID: v.VolumeID, target: t, ctrl: backend.ControllerName(id), fn: fn, boot: boot})
	}
	// The boot volume first, then the listed order: that order hands out
	// nsids to new volumes.
	sort.SliceStable(items, func(i, j int) bool { return items[i].boot && !items[j].boot })
	r.mu.Lock()
	cd := r.configDrive
	r.mu.Unlock()
	if cd != "" {
		items = append(items, &item{fn: pf0, file: cd, bdev: ConfigDriveBdev})
	}
	return items, nil
}

// snapshot is what SPDK holds, read at the start of a reconcile.
type snapshot struct {
	ctrls map[string]*spdk.NVMeController
	bdevs map[string][]spdk.Bdev // controller name -> its bdevs
	names map[string]bool        // every bdev name
	hcs   map[string]*drivers.HostController
}

func (r *Reconciler) read(ctx context.Context) (*snapshot, error) {
	s := &snapshot{ctrls: map[string]*spdk.NVMeController{}, bdevs: map[string][]spdk.Bdev{}, names: map[string]bool{},
		hcs: map[string]*drivers.HostController{}}
	cs, err := r.o.Client.GetControllers(ctx, "")
	if err != nil {
		return nil, err
	}
	for i := range cs {
		s.ctrls[cs[i].Name] = &cs[i]
	}
	bs, err := r.o.Client.GetBdevs(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		s.names[b.Name] = true
		if i := strings.LastIndex(b.Name, "n"); i > 0 && len(b.DriverSpecific.NVMe) > 0 {
			s.bdevs[b.Name[:i]] = append(s.bdevs[b.Name[:i]], b)
		}
	}
	hcs, err := r.o.Driver.Controllers(ctx)
	if err != nil {
		return nil, err
	}
	for i := range hcs {
		s.hcs[fnKey(hcs[i].Function)] = &hcs[i]
	}
	return s, nil
}

// Reconcile implements agent.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, d *state.Desired) error {
	items, err := r.plan(d)
	if err != nil {
		return err
	}
	snap, err := r.read(ctx)
	if err != nil {
		err = fmt.Errorf("storage: read SPDK state: %w", err)
		for _, it := range items {
			it.err = err
		}
		r.record(items, nil)
		return err
	}
	changed := false
	mark := func(did bool) { changed = changed || did }

	// Which bdev each item has now (when its controller exists).
	for _, it := range items {
		if it.ctrl == "" {
			continue
		}
		cur := snap.ctrls[it.ctrl]
		if cur != nil && r.be.Stale(cur, it.target) {
			continue // re-attached below; its namespace goes first
		}
		if cands := snap.bdevs[it.ctrl]; cur != nil && len(cands) > 0 {
			if b, err := backend.SelectBdev(it.ctrl, it.target, cands); err == nil {
				it.bdev = b.Name
			}
		}
	}

	var errs []error
	// 1. Removals, host side first: a namespace goes before its backend.
	keep := map[string]*item{} // "fn/bdev" of wanted exposures
	wantFn := map[string]bool{}
	for _, it := range items {
		wantFn[fnKey(it.fn)] = true
		if it.bdev != "" {
			keep[fnKey(it.fn)+"/"+it.bdev] = it
		}
	}
	for key, hc := range snap.hcs {
		var kept []drivers.HostNamespace
		for _, ns := range hc.Namespaces {
			it := keep[key+"/"+ns.Bdev]
			ok := it != nil && (!it.boot || ns.NSID == 1) && (it.boot || key != fnKey(pf0) || ns.NSID != 1)
			if ok {
				it.nsid = ns.NSID
				kept = append(kept, ns)
				continue
			}
			if !wantFn[key] {
				kept = append(kept, ns) // the whole controller goes below, with these
				continue
			}
			r.log.Info("removing namespace", zap.String("function", key), zap.Int("nsid", ns.NSID), zap.String("bdev", ns.Bdev))
			if err := r.o.Driver.RemoveNamespace(ctx, *hc, ns.NSID); err != nil {
				errs = append(errs, fmt.Errorf("remove nsid %d from %s: %w", ns.NSID, key, err))
				kept = append(kept, ns)
			}
			mark(true)
		}
		hc.Namespaces = kept
		if !wantFn[key] {
			r.log.Info("removing host controller", zap.String("function", key))
			if err := r.o.Driver.RemoveController(ctx, *hc); err != nil {
				errs = append(errs, fmt.Errorf("remove host controller %s: %w", key, err))
			} else {
				delete(snap.hcs, key)
			}
			mark(true)
		}
	}
	wantCtrl := map[string]bool{}
	for _, it := range items {
		wantCtrl[it.ctrl] = true
	}
	for name := range snap.ctrls {
		if _, ours := backend.VolumeIDOf(name); !ours || wantCtrl[name] {
			continue
		}
		if err := r.be.Detach(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", name, err))
		}
		delete(snap.ctrls, name)
		mark(true)
	}
	cdWanted := false
	for _, it := range items {
		cdWanted = cdWanted || it.file != ""
	}
	if snap.names[ConfigDriveBdev] && !cdWanted {
		if err := r.o.Client.AIODelete(ctx, ConfigDriveBdev); err != nil {
			errs = append(errs, fmt.Errorf("delete config drive bdev: %w", err))
		}
		mark(true)
	}

	// 2. Host controllers for every function in use.
	fnErr := map[string]error{}
	for _, it := range items {
		key := fnKey(it.fn)
		if _, done := fnErr[key]; done {
			continue
		}
		cur := snap.hcs[key]
		if cur != nil && cur.ID != "" {
			fnErr[key] = nil
			continue
		}
		hc, err := r.o.Driver.EnsureController(ctx, it.fn, cur)
		mark(true)
		if err != nil {
			fnErr[key] = fmt.Errorf("host controller %s: %w", key, err)
			continue
		}
		if cur != nil {
			hc.Namespaces = cur.Namespaces
		}
		snap.hcs[key], fnErr[key] = &hc, nil
	}

	// 3. nsids: kept ones stay; the boot volume gets 1; others the lowest
	// free (from 2 on PF 0, where 1 is the boot disk's).
	used := map[string]map[int]bool{}
	for key, hc := range snap.hcs {
		used[key] = map[int]bool{}
		for _, ns := range hc.Namespaces {
			used[key][ns.NSID] = true
		}
	}
	r.mu.Lock()
	last := r.lastNSID
	r.mu.Unlock()
	for _, it := range items { // first the nsids the host knew
		key := fnKey(it.fn)
		if n := last[it.volumeID+"/"+key]; it.nsid == 0 && used[key] != nil && n != 0 && !used[key][n] && it.volumeID != "" &&
			(it.boot == (n == 1) || key != fnKey(pf0)) {
			it.nsid = n
			used[key][n] = true
		}
	}
	for _, it := range items {
		key := fnKey(it.fn)
		if it.nsid != 0 || used[key] == nil {
			continue
		}
		if it.boot {
			it.nsid = 1
		} else {
			n := 1
			if key == fnKey(pf0) {
				n = 2
			}
			for used[key][n] {
				n++
			}
			it.nsid = n
		}
		used[key][it.nsid] = true
	}

	// 4. Backend and namespace per item, several at once.
	var wg sync.WaitGroup
	var cmu sync.Mutex
	sem := make(chan struct{}, r.o.Parallel)
	for _, it := range items {
		if err := fnErr[fnKey(it.fn)]; err != nil {
			it.err = err
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(it *item) {
			defer wg.Done()
			defer func() { <-sem }()
			did, err := r.ensureItem(ctx, it, snap)
			it.err = err
			cmu.Lock()
			mark(did)
			cmu.Unlock()
		}(it)
	}
	wg.Wait()

	// 5. Make the controllers visible, now that the boot disk is in.
	for key, hc := range snap.hcs {
		if !wantFn[key] || hc.Active {
			continue
		}
		mark(true)
		if err := r.o.Driver.Activate(ctx, *hc); err != nil {
			err = fmt.Errorf("activate host controller %s: %w", key, err)
			for _, it := range items {
				if fnKey(it.fn) == key && it.err == nil {
					it.err = err
				}
			}
			continue
		}
		hc.Active = true
	}

	// Path states for Observe; re-read only if something changed.
	ctrls := snap.ctrls
	if changed {
		if cs, err := r.o.Client.GetControllers(ctx, ""); err == nil {
			ctrls = map[string]*spdk.NVMeController{}
			for i := range cs {
				ctrls[cs[i].Name] = &cs[i]
			}
		}
	}
	r.record(items, ctrls)
	for _, it := range items {
		if it.err != nil {
			name := it.volumeID
			if name == "" {
				name = "config drive"
			}
			errs = append(errs, fmt.Errorf("volume %s: %w", name, it.err))
		}
	}
	return errors.Join(errs...)
}

// ensureItem attaches the backend (if needed) and adds the namespace (if
// needed); it reports whether it changed anything.
func (r *Reconciler) ensureItem(ctx context.Context, it *item, snap *snapshot) (bool, error) {
	changed, fresh := false, false
	if it.file != "" {
		if !snap.names[ConfigDriveBdev] {
			if err := r.be.EnsureAIO(ctx, ConfigDriveBdev, it.file, false); err != nil {
				return true, fmt.Errorf("config drive %s: %w", it.file, err)
			}
			changed = true
		}
	} else {
		res, err := r.be.Ensure(ctx, it.ctrl, it.target, snap.ctrls[it.ctrl])
		changed = res.Changed
		if err != nil {
			return changed, err
		}
		fresh = res.Bdevs != nil
		if fresh || it.bdev == "" {
			bdev, err := r.pickBdev(ctx, it, res.Bdevs)
			if err != nil {
				return changed, err
			}
			it.bdev = bdev
		}
	}
	hc := snap.hcs[fnKey(it.fn)]
	// A controller attached just now has fresh bdevs: whatever namespace
	// showed the old ones went with them (SPDK hot-removes it).
	if !fresh {
		for _, ns := range hc.Namespaces {
			if ns.Bdev == it.bdev && ns.NSID == it.nsid {
				return changed, nil
			}
		}
	}
	r.log.Info("exposing volume", zap.String("volume", it.volumeID), zap.String("bdev", it.bdev),
		zap.String("function", fnKey(it.fn)), zap.Int("nsid", it.nsid))
	if err := r.o.Driver.AddNamespace(ctx, *hc, drivers.HostNamespace{NSID: it.nsid, Bdev: it.bdev}); err != nil {
		return true, fmt.Errorf("expose %s as nsid %d on %s: %w", it.bdev, it.nsid, fnKey(it.fn), err)
	}
	return true, nil
}

// pickBdev finds the volume's namespace among a controller's bdevs; names
// from a fresh attach are enough unless several namespaces came back.
func (r *Reconciler) pickBdev(ctx context.Context, it *item, names []string) (string, error) {
	if len(names) == 1 || (it.target.NSID != 0 && len(names) > 0) {
		var cands []spdk.Bdev
		for _, n := range names {
			cands = append(cands, spdk.Bdev{Name: n})
		}
		if it.target.VolUUID == "" && it.target.VolumeNGUID == "" || len(names) == 1 {
			t := it.target
			t.VolUUID, t.VolumeNGUID = "", ""
			if b, err := backend.SelectBdev(it.ctrl, t, cands); err == nil {
				return b.Name, nil
			}
		}
	}
	all, err := r.o.Client.GetBdevs(ctx, "")
	if err != nil {
		return "", err
	}
	var cands []spdk.Bdev
	for _, b := range all {
		if strings.HasPrefix(b.Name, it.ctrl+"n") {
			cands = append(cands, b)
		}
	}
	b, err := backend.SelectBdev(it.ctrl, it.target, cands)
	return b.Name, err
}

func (r *Reconciler) record(items []*item, ctrls map[string]*spdk.NVMeController) {
	var out []state.VolumeStatus
	for _, it := range items {
		if it.volumeID == "" {
			continue
		}
		f := it.fn
		st := state.VolumeStatus{VolumeID: it.volumeID, State: state.StateAttached, Controller: it.ctrl, Bdev: it.bdev,
			Function: &f, NSID: it.nsid}
		have := backend.Paths(ctrls[it.ctrl])
		for _, p := range it.target.Portals {
			ps := state.PathStatus{Transport: p.Transport, Address: p.Address, Port: fmt.Sprint(p.Port), State: "detached"}
			for _, h := range have {
				if strings.EqualFold(h.Trid.Trtype, p.Transport) && h.Trid.Traddr == p.Address && h.Trid.Trsvcid == ps.Port {
					ps.State = h.State
				}
			}
			st.Paths = append(st.Paths, ps)
		}
		if it.err != nil {
			st.State, st.LastError = state.StateError, it.err.Error()
			if it.bdev == "" {
				st.NSID = 0
			}
		}
		out = append(out, st)
	}
	last := map[string]int{}
	r.mu.Lock()
	for _, it := range items {
		key := it.volumeID + "/" + fnKey(it.fn)
		switch {
		case it.volumeID == "":
		case it.err == nil && it.nsid != 0:
			last[key] = it.nsid
		case it.err != nil && r.lastNSID[key] != 0:
			// Still wanted but failing (its target unreachable after a
			// crash): keep the nsid the host knew for when it comes back.
			last[key] = r.lastNSID[key]
		}
	}
	r.status = out
	changed := ctrls != nil && !maps.Equal(r.lastNSID, last) // only a reconcile that could read SPDK
	if changed {
		r.lastNSID = last
	}
	r.mu.Unlock()
	if changed {
		r.saveNSIDs(last)
	}
}

// Observe implements agent.Reconciler from the last reconcile (no SPDK call).
func (r *Reconciler) Observe(_ context.Context, obs *state.Observed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	obs.Volumes = make([]state.VolumeStatus, len(r.status))
	for i, s := range r.status {
		s.Paths = append([]state.PathStatus(nil), s.Paths...)
		obs.Volumes[i] = s
	}
}

// Health implements agent.Reconciler: SPDK answers spdk_get_version.
func (r *Reconciler) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.o.Client.GetVersion(ctx); err != nil {
		if errors.Is(err, errdefs.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	return nil
}
