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
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/jsonx"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// Options build a Reconciler.
type Options struct {
	Client   *spdk.Client
	Storage  Settings
	NodeUUID string
	Driver   drivers.StorageDriver
	Logger   *zap.Logger
	// NSIDFile, when set, persists where each volume was exposed, so that
	// after an agent restart *and* an SPDK restart every namespace still
	// comes back at the nsid the running host knows.
	NSIDFile string
	// Hold, when set, names the controllers held paused by a quiesce: the
	// reconcile does not activate (resume) them meanwhile.
	Hold *Hold
	// Parallel bounds how many volumes are attached at once (default 8):
	// a real attach takes 60-170 ms, mostly waiting for the target.
	Parallel int
}

// Settings are how volumes are attached and where config drives live.
type Settings struct {
	// HostNQN is this DPU's NVMe host NQN, used for every attach.
	HostNQN string
	// The bdev_nvme controller options of every attach (SPDK's names).
	CtrlrLossTimeoutSec, ReconnectDelaySec, FastIOFailTimeoutSec int
	// Multipath is bdev_nvme's mode for volumes with several portals:
	// multipath or failover.
	Multipath string
	// ConfigDriveDir holds the config-drive images, one file per sha256.
	ConfigDriveDir string
	// ConfigDriveMaxBytes is the largest decoded image accepted
	// (DefaultConfigDriveMaxBytes when not positive).
	ConfigDriveMaxBytes int
	// ConfigDriveCAFile (PEM; empty: the system roots) verifies an https
	// config-drive URL's server; ConfigDriveTimeout bounds one download
	// (DefaultConfigDriveTimeout when not positive).
	ConfigDriveCAFile  string
	ConfigDriveTimeout time.Duration
}

// Reconciler implements agent.Reconciler for storage.
type Reconciler struct {
	o       Options
	be      *backend.Backend
	log     *zap.Logger
	targets *targets // parsed connection info
	fetch   *http.Client

	// runMu keeps reconciles from overlapping: SPDK refuses a second
	// bdev_set_qos_limit on a bdev while one is in progress.
	runMu sync.Mutex

	mu     sync.Mutex // guards status, cdStatus and lastNSID
	status []nodestate.VolumeStatus
	// cdStatus is the config drive's last observed state (nil: none wanted).
	cdStatus *nodestate.ConfigDriveStatus
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
	if !nodestate.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: storage: node uuid %q", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Storage.ConfigDriveMaxBytes <= 0 {
		o.Storage.ConfigDriveMaxBytes = DefaultConfigDriveMaxBytes
	}
	be, err := backend.New(backend.Options{
		Client: o.Client, HostNQN: o.Storage.HostNQN, Multipath: o.Storage.Multipath,
		CtrlrLossTimeoutSec: o.Storage.CtrlrLossTimeoutSec, ReconnectDelaySec: o.Storage.ReconnectDelaySec,
		FastIOFailTimeoutSec: o.Storage.FastIOFailTimeoutSec, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	fetch, err := newFetchClient(o.Storage.ConfigDriveCAFile, o.Storage.ConfigDriveTimeout)
	if err != nil {
		return nil, err
	}
	r := &Reconciler{o: o, be: be, log: o.Logger.With(zap.String("component", "storage")), targets: newTargets(), fetch: fetch}
	if r.lastNSID, err = r.loadNSIDs(); err != nil {
		return nil, err
	}
	return r, nil
}

// NSIDSchemaVersion is the layout of NSIDFile that saveNSIDs writes,
// "major.minor", versioned like the desired-state file (agent/state, internal/jsonx): 1 is
// the bare map of d75592a and before, read as is; a newer minor's extra
// fields are ignored; a newer major is refused.
const NSIDSchemaVersion = "2.0"

const nsidSchemaMajor = 2

// nsidFile is NSIDFile's schema 2 layout.
type nsidFile struct {
	SchemaVersion string `json:"schema_version"`
	// NSIDs maps "<volume id or config-drive>/<function>" to its nsid.
	NSIDs map[string]int `json:"nsids"`
}

// loadNSIDs reads NSIDFile; a missing or unreadable file means no memory
// (nsids are then allocated afresh), never a failure to start. A file of a
// newer schema major is an error: nsids allocated afresh could move a
// running host's disks, so the agent does not start with it.
func (r *Reconciler) loadNSIDs() (map[string]int, error) {
	if r.o.NSIDFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(r.o.NSIDFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var m map[string]int
	if err == nil {
		var f nsidFile
		var ver string
		var unknown []string
		ver, unknown, err = jsonx.DecodeVersioned(b, nsidSchemaMajor, NSIDSchemaVersion, &f)
		switch {
		case errors.Is(err, errdefs.ErrConflict), errors.Is(err, errdefs.ErrInvalidArgument): // a newer major, a malformed version
			return nil, fmt.Errorf("storage: %s: %w", r.o.NSIDFile, err)
		case err != nil:
		case ver == "": // schema 1: the bare map
			err = json.Unmarshal(b, &m)
		default:
			m = f.NSIDs
			if len(unknown) > 0 {
				r.log.Warn("ignoring fields of the nsids file this agent does not know", zap.String("file", r.o.NSIDFile),
					zap.String("schema_version", ver), zap.Strings("fields", unknown))
			}
		}
	}
	if err != nil {
		r.log.Warn("ignoring the remembered nsids", zap.String("file", r.o.NSIDFile), zap.Error(err))
		return nil, nil
	}
	return m, nil
}

func (r *Reconciler) saveNSIDs(m map[string]int) {
	if r.o.NSIDFile == "" {
		return
	}
	b, err := json.Marshal(nsidFile{SchemaVersion: NSIDSchemaVersion, NSIDs: m})
	if err == nil {
		err = atomicfile.Write(r.o.NSIDFile, b, 0o600)
	}
	if err != nil {
		r.log.Warn("could not persist the nsids", zap.String("file", r.o.NSIDFile), zap.Error(err))
	}
}

// Name implements agent.Reconciler.
func (r *Reconciler) Name() string { return "storage" }

var pf0 = nodestate.Function{PF: 0}

// item is one thing to expose: a volume or the config drive.
type item struct {
	volumeID string // "" for the config drive
	target   nvmeof.Target
	ctrl     string // bdev_nvme controller ("" for the config drive)
	fn       nodestate.Function
	boot     bool
	file     string // config drive image
	sha      string // config drive sha256
	drive    *nodestate.ConfigDrive

	bdev string
	nsid int
	qos  *nodestate.QoSLimits // limits SPDK holds after this reconcile
	err  error
	// fnErr is the driver's refusal of fn met by a reconcile (it was
	// admitted, but the card no longer has it: a VF gone with the host's
	// SR-IOV): this item fails, the others go on.
	fnErr error
}

// key names the item among remembered nsids.
func (it *item) key() string {
	id := it.volumeID
	if id == "" {
		id = configDriveKey
	}
	return id + "/" + it.fn.String()
}

// Validate implements agent.Reconciler: everything that can be checked
// without SPDK. It parses each volume's connection info; reconciles of the
// admitted state reuse the result.
func (r *Reconciler) Validate(_ context.Context, d *nodestate.Desired) error {
	_, err := r.plan(d, true)
	if err == nil {
		err = r.checkConfigDrive(d.ConfigDrive)
	}
	return err
}

// plan validates d and turns it into items. Connection info is parsed
// only when it is new to this reconciler (see targets). A function the
// driver refuses fails admission; in a reconcile (admit false) one the card
// just does not have now (drivers.ErrFunctionAbsent: VFs come and go with
// the host's SR-IOV) fails only the items on it.
func (r *Reconciler) plan(d *nodestate.Desired, admit bool) ([]*item, error) {
	ts := make([]nvmeof.Target, 0, len(d.Volumes))
	if err := d.ValidateWith(func(v nodestate.Volume) error { // called once per volume, in order
		t, err := r.targets.get(v)
		ts = append(ts, t)
		return err
	}); err != nil {
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
	for i, v := range d.Volumes {
		t := ts[i]
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
		fnErr := r.o.Driver.ValidateFunction(fn)
		if fnErr != nil && (admit || !errors.Is(fnErr, drivers.ErrFunctionAbsent)) {
			return nil, fmt.Errorf("volume %s: %w", v.VolumeID, fnErr)
		}
		boot := v.BootIndex != nil && *v.BootIndex == 0
		if boot && !fn.Equal(pf0) {
			return nil, fmt.Errorf("%w: boot volume %s must be on pf 0 (nsid 1 of the boot controller)", errdefs.ErrInvalidArgument, v.VolumeID)
		}
		id := strings.ToLower(v.VolumeID)
		items = append(items, &item{volumeID: v.VolumeID, target: t, ctrl: backend.ControllerName(id), fn: fn, boot: boot, fnErr: fnErr})
	}
	// The boot volume first, then the listed order: that order hands out
	// nsids to new volumes.
	sort.SliceStable(items, func(i, j int) bool { return items[i].boot && !items[j].boot })
	if c := d.ConfigDrive; c != nil {
		items = append(items, &item{fn: pf0, file: r.imagePath(c.SHA256), sha: c.SHA256, drive: c, bdev: ConfigDriveBdevName(c.SHA256)})
	}
	return items, nil
}

// snapshot is what SPDK holds, read at the start of a reconcile.
type snapshot struct {
	ctrls  map[string]*spdk.NVMeController
	bdevs  map[string][]spdk.Bdev // controller name -> its bdevs
	byName map[string]spdk.Bdev   // every bdev
	hcs    map[string]*drivers.HostController
}

func (r *Reconciler) read(ctx context.Context) (*snapshot, error) {
	s := &snapshot{ctrls: map[string]*spdk.NVMeController{}, hcs: map[string]*drivers.HostController{}}
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
	s.setBdevs(bs)
	hcs, err := r.o.Driver.Controllers(ctx)
	if err != nil {
		return nil, err
	}
	for i := range hcs {
		s.hcs[hcs[i].Function.String()] = &hcs[i]
	}
	return s, nil
}

func (s *snapshot) setBdevs(bs []spdk.Bdev) {
	s.bdevs, s.byName = map[string][]spdk.Bdev{}, map[string]spdk.Bdev{}
	for _, b := range bs {
		s.byName[b.Name] = b
		if i := strings.LastIndex(b.Name, "n"); i > 0 && len(b.DriverSpecific.NVMe) > 0 {
			s.bdevs[b.Name[:i]] = append(s.bdevs[b.Name[:i]], b)
		}
	}
}

// pass is one reconcile: the plan, what SPDK held, and what was done.
type pass struct {
	r       *Reconciler
	items   []*item
	snap    *snapshot
	wantFn  map[string]bool
	changed bool
	errs    []error
	fnErr   map[string]error
	mu      sync.Mutex // guards changed while items are ensured in parallel
}

func (p *pass) mark(did bool) {
	p.mu.Lock()
	p.changed = p.changed || did
	p.mu.Unlock()
}

// Reconcile implements agent.Reconciler. Phases: read SPDK, match what is
// there, remove what is not wanted (host side first), host controllers,
// nsids, backends and namespaces, activation, record.
func (r *Reconciler) Reconcile(ctx context.Context, d *nodestate.Desired) error {
	items, err := r.plan(d, false)
	if err != nil {
		return err
	}
	r.targets.keepOnly(d)
	r.runMu.Lock()
	defer r.runMu.Unlock()
	snap, err := r.read(ctx)
	if err != nil {
		err = fmt.Errorf("storage: read SPDK state: %w", err)
		for _, it := range items {
			it.err = err
		}
		r.record(items, nil, nil)
		return err
	}
	p := &pass{r: r, items: items, snap: snap, wantFn: map[string]bool{}, fnErr: map[string]error{}}
	for _, it := range items {
		p.wantFn[it.fn.String()] = true
		if it.fnErr != nil {
			p.fnErr[it.fn.String()] = fmt.Errorf("host controller %s: %w", it.fn, it.fnErr)
		}
	}
	p.matchBdevs()
	p.removeNamespaces(ctx)
	p.removeBackends(ctx)
	p.ensureControllers(ctx)
	p.allocateNSIDs()
	p.ensureItems(ctx)
	p.activate(ctx)
	// Path states for Observe; re-read only if something changed. Sizes of
	// new bdevs come with Observe's own refresh.
	ctrls := snap.ctrls
	if p.changed {
		if cs, err := r.o.Client.GetControllers(ctx, ""); err == nil {
			ctrls = map[string]*spdk.NVMeController{}
			for i := range cs {
				ctrls[cs[i].Name] = &cs[i]
			}
		}
	}
	r.record(items, ctrls, snap.byName)
	r.gcImages(d)
	for _, it := range items {
		if it.err != nil {
			name := it.volumeID
			if name == "" {
				name = "config drive"
			}
			p.errs = append(p.errs, fmt.Errorf("volume %s: %w", name, it.err))
		}
	}
	return errors.Join(p.errs...)
}

// matchBdevs finds the bdev each volume has now (when its controller exists
// and is current).
func (p *pass) matchBdevs() {
	for _, it := range p.items {
		if it.ctrl == "" {
			continue
		}
		cur := p.snap.ctrls[it.ctrl]
		if cur != nil && p.r.be.Stale(cur, it.target) {
			continue // re-attached below; its namespace goes first
		}
		if cands := p.snap.bdevs[it.ctrl]; cur != nil && len(cands) > 0 {
			if b, err := backend.SelectBdev(it.ctrl, it.target, cands); err == nil {
				it.bdev = b.Name
			}
		}
	}
}

// removeNamespaces drops the namespaces nothing wants (keeping the nsid of
// those kept) and the host controllers of functions no item uses.
func (p *pass) removeNamespaces(ctx context.Context) {
	r := p.r
	keep := map[string]*item{} // "fn/bdev" of wanted exposures
	for _, it := range p.items {
		if it.bdev != "" {
			keep[it.fn.String()+"/"+it.bdev] = it
		}
	}
	for key, hc := range p.snap.hcs {
		var kept []drivers.HostNamespace
		for _, ns := range hc.Namespaces {
			it := keep[key+"/"+ns.Bdev]
			ok := it != nil && (!it.boot || ns.NSID == 1) && (it.boot || key != pf0.String() || ns.NSID != 1)
			if ok {
				it.nsid = ns.NSID
				kept = append(kept, ns)
				continue
			}
			if !p.wantFn[key] {
				kept = append(kept, ns) // the whole controller goes below, with these
				continue
			}
			logctx.Logger(ctx, r.log).Info("removing namespace", zap.String("function", key), zap.Int("nsid", ns.NSID), zap.String("bdev", ns.Bdev))
			if err := r.o.Driver.RemoveNamespace(ctx, *hc, ns.NSID); err != nil {
				p.errs = append(p.errs, fmt.Errorf("remove nsid %d from %s: %w", ns.NSID, key, err))
				kept = append(kept, ns)
			}
			p.mark(true)
		}
		hc.Namespaces = kept
		if !p.wantFn[key] {
			logctx.Logger(ctx, r.log).Info("removing host controller", zap.String("function", key))
			if err := r.o.Driver.RemoveController(ctx, *hc); err != nil {
				p.errs = append(p.errs, fmt.Errorf("remove host controller %s: %w", key, err))
			} else {
				delete(p.snap.hcs, key)
			}
			p.mark(true)
		}
	}
}

// removeBackends detaches the agent's controllers and deletes its
// config-drive bdevs that no item wants.
func (p *pass) removeBackends(ctx context.Context) {
	r := p.r
	want := map[string]bool{}
	for _, it := range p.items {
		if it.file != "" {
			want[it.bdev] = true
		} else {
			want[it.ctrl] = true
		}
	}
	for name := range p.snap.ctrls {
		if _, ours := backend.VolumeIDOf(name); !ours || want[name] {
			continue
		}
		if err := r.be.Detach(ctx, name); err != nil {
			p.errs = append(p.errs, fmt.Errorf("detach %s: %w", name, err))
		}
		delete(p.snap.ctrls, name)
		p.mark(true)
	}
	for name, b := range p.snap.byName {
		if !strings.HasPrefix(name, ConfigDrivePrefix) || b.DriverSpecific.AIO == nil || want[name] {
			continue
		}
		logctx.Logger(ctx, r.log).Info("removing config drive bdev", zap.String("bdev", name))
		if err := r.o.Client.AIODelete(ctx, name); err != nil {
			p.errs = append(p.errs, fmt.Errorf("delete config drive bdev %s: %w", name, err))
		}
		p.mark(true)
	}
}

// ensureControllers makes a host controller for every function in use.
func (p *pass) ensureControllers(ctx context.Context) {
	for _, it := range p.items {
		key := it.fn.String()
		if _, done := p.fnErr[key]; done {
			continue
		}
		cur := p.snap.hcs[key]
		if cur != nil && cur.ID != "" {
			p.fnErr[key] = nil
			continue
		}
		hc, err := p.r.o.Driver.EnsureController(ctx, it.fn, cur)
		p.mark(true)
		if err != nil {
			p.fnErr[key] = fmt.Errorf("host controller %s: %w", key, err)
			continue
		}
		if cur != nil {
			hc.Namespaces = cur.Namespaces
		}
		p.snap.hcs[key], p.fnErr[key] = &hc, nil
	}
}

// allocateNSIDs hands out nsids (assignNSIDs) from what the host
// controllers hold and what the host knew.
func (p *pass) allocateNSIDs() {
	used := map[string][]int{}
	for key, hc := range p.snap.hcs {
		used[key] = []int{}
		for _, ns := range hc.Namespaces {
			used[key] = append(used[key], ns.NSID)
		}
	}
	reqs := make([]nsidRequest, len(p.items))
	for i, it := range p.items {
		reqs[i] = nsidRequest{Key: it.key(), Fn: it.fn.String(), Boot: it.boot, Have: it.nsid}
	}
	p.r.mu.Lock()
	last := p.r.lastNSID
	p.r.mu.Unlock()
	for i, n := range assignNSIDs(reqs, used, last, pf0.String()) {
		p.items[i].nsid = n
	}
}

// ensureItems attaches backends and adds namespaces, several at once.
func (p *pass) ensureItems(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, p.r.o.Parallel)
	for _, it := range p.items {
		if err := p.fnErr[it.fn.String()]; err != nil {
			it.err = err
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(it *item) {
			defer wg.Done()
			defer func() { <-sem }()
			did, err := p.r.ensureItem(ctx, it, p.snap)
			it.err = err
			p.mark(did)
		}(it)
	}
	wg.Wait()
}

// activate makes the controllers visible, now that the boot disk is in.
func (p *pass) activate(ctx context.Context) {
	for key, hc := range p.snap.hcs {
		if !p.wantFn[key] || hc.Active {
			continue
		}
		if h := p.r.o.Hold; h != nil && h.Pauses(key) {
			continue // quiesced: the hold resumes it
		}
		p.mark(true)
		if err := p.r.o.Driver.Activate(ctx, *hc); err != nil {
			err = fmt.Errorf("activate host controller %s: %w", key, err)
			for _, it := range p.items {
				if it.fn.String() == key && it.err == nil {
					it.err = err
				}
			}
			continue
		}
		hc.Active = true
	}
}

// ensureItem attaches the backend (if needed), sets its QoS (if it differs)
// and adds the namespace (if needed); it reports whether it changed anything.
func (r *Reconciler) ensureItem(ctx context.Context, it *item, snap *snapshot) (bool, error) {
	changed, fresh := false, false
	if it.file != "" {
		if _, ok := snap.byName[it.bdev]; !ok {
			if err := r.ensureImage(ctx, it); err != nil {
				return false, err
			}
			if err := r.be.EnsureAIO(ctx, it.bdev, it.file, false); err != nil {
				return true, fmt.Errorf("config drive %s: %w", it.sha, err)
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
		// A fresh bdev has no limits (SPDK drops them with the old one).
		var cur spdk.QoSLimits
		if b, ok := snap.byName[it.bdev]; ok && !fresh {
			cur = b.RateLimits
		}
		did, err := r.applyQoS(ctx, it, cur)
		changed = changed || did
		if err != nil {
			return changed, err
		}
	}
	hc := snap.hcs[it.fn.String()]
	// A controller attached just now has fresh bdevs: whatever namespace
	// showed the old ones went with them (SPDK hot-removes it).
	if !fresh {
		for _, ns := range hc.Namespaces {
			if ns.Bdev == it.bdev && ns.NSID == it.nsid {
				return changed, nil
			}
		}
	}
	logctx.Logger(ctx, r.log).Info("exposing", zap.String("volume", it.volumeID), zap.String("bdev", it.bdev),
		zap.String("function", it.fn.String()), zap.Int("nsid", it.nsid))
	if err := r.o.Driver.AddNamespace(ctx, *hc, drivers.HostNamespace{NSID: it.nsid, Bdev: it.bdev}); err != nil {
		return true, fmt.Errorf("expose %s as nsid %d on %s: %w", it.bdev, it.nsid, it.fn.String(), err)
	}
	return true, nil
}

// applyQoS gives the volume's bdev the limits of its qos_specs (none: all
// 0) unless it holds them already. SPDK stores IOPS rounded up to 1000, so
// the comparison uses what SPDK would store: an unchanged spec makes no call.
func (r *Reconciler) applyQoS(ctx context.Context, it *item, cur spdk.QoSLimits) (bool, error) {
	var want spdk.QoSLimits
	if q := it.target.QoS; q != nil {
		want = q.Effective()
	}
	it.qos = qosStatus(cur)
	if want == cur {
		return false, nil
	}
	logctx.Logger(ctx, r.log).Info("setting QoS", zap.String("volume", it.volumeID), zap.String("bdev", it.bdev), zap.Any("limits", want))
	if err := r.o.Client.SetQoSLimit(ctx, it.bdev, want); err != nil {
		return true, fmt.Errorf("bdev_set_qos_limit %s: %w", it.bdev, err)
	}
	it.qos = qosStatus(want)
	return true, nil
}

// qosStatus is the observed form of limits: nil when there are none.
func qosStatus(l spdk.QoSLimits) *nodestate.QoSLimits {
	if l == (spdk.QoSLimits{}) {
		return nil
	}
	return &nodestate.QoSLimits{RwIOsPerSec: l.RwIOsPerSec, RwMBytesPerSec: l.RwMBytesPerSec,
		RMBytesPerSec: l.RMBytesPerSec, WMBytesPerSec: l.WMBytesPerSec}
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

// record keeps what Observe reports and the nsids to remember. ctrls nil
// means SPDK could not be read.
func (r *Reconciler) record(items []*item, ctrls map[string]*spdk.NVMeController, bdevs map[string]spdk.Bdev) {
	var out []nodestate.VolumeStatus
	var cd *nodestate.ConfigDriveStatus
	for _, it := range items {
		if it.volumeID == "" {
			cd = &nodestate.ConfigDriveStatus{SHA256: it.sha, State: nodestate.StateAttached, NSID: it.nsid}
			if it.err != nil {
				cd.State, cd.LastError, cd.NSID = nodestate.StateError, it.err.Error(), 0
			}
			continue
		}
		out = append(out, r.volumeStatus(it, ctrls, bdevs))
	}
	last := map[string]int{}
	r.mu.Lock()
	for _, it := range items {
		key := it.key()
		switch {
		case it.err == nil && it.nsid != 0:
			last[key] = it.nsid
		case it.err != nil && r.lastNSID[key] != 0:
			// Still wanted but failing (its target unreachable after a
			// crash): keep the nsid the host knew for when it comes back.
			last[key] = r.lastNSID[key]
		}
	}
	r.status, r.cdStatus = out, cd
	changed := ctrls != nil && !maps.Equal(r.lastNSID, last) // only a reconcile that could read SPDK
	if changed {
		r.lastNSID = last
	}
	r.mu.Unlock()
	if changed {
		r.saveNSIDs(last)
	}
}

func (r *Reconciler) volumeStatus(it *item, ctrls map[string]*spdk.NVMeController, bdevs map[string]spdk.Bdev) nodestate.VolumeStatus {
	f := it.fn
	st := nodestate.VolumeStatus{VolumeID: it.volumeID, State: nodestate.StateAttached, Controller: it.ctrl, Bdev: it.bdev,
		Function: &f, NSID: it.nsid, QoS: it.qos}
	if b, ok := bdevs[it.bdev]; ok && it.bdev != "" {
		st.SizeBytes = b.NumBlocks * int64(b.BlockSize)
	}
	have := backend.Paths(ctrls[it.ctrl])
	for _, p := range it.target.Portals {
		ps := nodestate.PathStatus{Transport: p.Transport, Address: p.Address, Port: fmt.Sprint(p.Port), State: "detached"}
		for _, h := range have {
			if strings.EqualFold(h.Trid.Trtype, p.Transport) && h.Trid.Traddr == p.Address && h.Trid.Trsvcid == ps.Port {
				ps.State = h.State
			}
		}
		st.Paths = append(st.Paths, ps)
	}
	if it.err != nil {
		st.State, st.LastError = nodestate.StateError, it.err.Error()
		if it.bdev == "" {
			st.NSID = 0
		}
	}
	return st
}

// sizeRefreshTimeout bounds Observe's one bdev_get_bdevs: get_state must
// stay cheap when SPDK is slow (the last known sizes are reported then).
const sizeRefreshTimeout = time.Second

// Observe implements agent.Reconciler from the last reconcile, with the
// volumes' sizes re-read in one bdev_get_bdevs call (an online extend shows
// at once, without waiting for a reconcile).
func (r *Reconciler) Observe(ctx context.Context, obs *nodestate.Observed) {
	r.refreshSizes(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	obs.Volumes = make([]nodestate.VolumeStatus, len(r.status))
	for i, s := range r.status {
		s.Paths = append([]nodestate.PathStatus(nil), s.Paths...)
		obs.Volumes[i] = s
	}
	if r.cdStatus != nil {
		c := *r.cdStatus
		obs.ConfigDrive = &c
	}
}

func (r *Reconciler) refreshSizes(ctx context.Context) {
	r.mu.Lock()
	n := len(r.status)
	r.mu.Unlock()
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sizeRefreshTimeout)
	defer cancel()
	bs, err := r.o.Client.GetBdevs(ctx, "")
	if err != nil {
		return
	}
	size := make(map[string]int64, len(bs))
	for _, b := range bs {
		size[b.Name] = b.NumBlocks * int64(b.BlockSize)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.status {
		if n, ok := size[r.status[i].Bdev]; ok && r.status[i].Bdev != "" {
			r.status[i].SizeBytes = n
		}
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
