package bluefield

// Storage half of the BlueField driver: DOCA SNAP 4. Every SNAP call, key
// and result field it uses is listed with its public source in
// docs/bluefield-snap.md; the SNAP side of that contract is emulated by
// storage/spdk/spdktest.
//
// Per host function: the NVMe emulation function SNAP reports for it
// (emulation_function_list), an NVMe subsystem (nvme_subsystem_create with
// the nqn alone) and a controller created suspended on the function's
// pci_bdf (vuid when SNAP has no bus address for it yet), the namespaces
// (nvme_namespace_create + nvme_controller_attach_ns), then
// nvme_controller_resume, so that the host's first look already finds the
// boot disk. A function that already holds a controller the agent did not
// create (NVIDIA's published configuration pre-creates NVMeCtrl1 on PF 0) is
// adopted: the agent's namespaces go into that controller's subsystem, and
// removing them never destroys the controller or the subsystem.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// EmulationTypeNVMe is emulation_function_list's type of NVMe functions.
const EmulationTypeNVMe = "NVME"

const (
	defaultListTimeout = 2 * time.Second
	// listFreshFor is how long a fetched function list is trusted to say
	// that a function does not exist (VFs appear when the host enables
	// SR-IOV, so an older list is fetched again before refusing).
	listFreshFor = time.Second
	// listRetryAfter spaces the bounded fetches ValidateFunction makes
	// while SNAP does not answer, so a hung SNAP costs one ListTimeout per
	// admission burst, not one per volume.
	listRetryAfter = 5 * time.Second
)

// StorageOptions configure the SNAP storage driver.
type StorageOptions struct {
	Client   *spdk.Client
	NodeUUID string
	Logger   *zap.Logger
	// ListTimeout bounds the emulation_function_list call ValidateFunction
	// makes when it holds no fresh function list (default 2s).
	ListTimeout time.Duration
}

// Storage is the SNAP 4 drivers.StorageDriver.
type Storage struct {
	o   StorageOptions
	log *zap.Logger

	fetchMu sync.Mutex // one bounded fetch at a time (ValidateFunction)

	mu      sync.Mutex          // guards what follows
	fns     []EmulationFunction // last emulation_function_list; nil: never read
	fnsAt   time.Time           // when fns was read
	failAt  time.Time           // last failed bounded fetch
	subsys  map[string]string   // ctrl_id -> NQN of the subsystem holding it
	resumed map[string]bool     // ctrl_ids resumed by this process
}

// NewStorage returns the driver; it makes no SNAP call.
func NewStorage(o StorageOptions) (*Storage, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: bluefield storage: no SNAP client", errdefs.ErrInvalidArgument)
	}
	if !nodestate.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: bluefield storage: node uuid %q", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	if o.ListTimeout <= 0 {
		o.ListTimeout = defaultListTimeout
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Storage{o: o, log: o.Logger, subsys: map[string]string{}, resumed: map[string]bool{}}, nil
}

// EmulationFunction is one PCIe function SNAP emulates, as
// emulation_function_list reports it.
type EmulationFunction struct {
	// Type is emulation_type: EmulationTypeNVMe for NVMe functions.
	Type string `json:"emulation_type"`
	// PF is pf_index: the index among SNAP's emulated PFs of that type, not
	// the network PF of the same number.
	PF int `json:"pf_index"`
	// VF is vf_index; nil for a PF.
	VF         *int   `json:"vf_index,omitempty"`
	PCIBDF     string `json:"pci_bdf"`
	VUID       string `json:"vuid"`
	VhcaID     int    `json:"vhca_id"`
	CtrlID     string `json:"ctrl_id,omitempty"`
	Hotplugged bool   `json:"hotplugged"`
}

// Function is the agent's name of f (pf<PF>[vf<VF>]).
func (f EmulationFunction) Function() nodestate.Function {
	return nodestate.Function{PF: f.PF, VF: f.VF}
}

func (f EmulationFunction) describe() string {
	return fmt.Sprintf("%s (%s)", f.Function(), f.PCIBDF)
}

type snapVFWire struct {
	Hotplugged    bool   `json:"hotplugged"`
	EmulationType string `json:"emulation_type"`
	VFIndex       int    `json:"vf_index"`
	PCIBDF        string `json:"pci_bdf"`
	VhcaID        int    `json:"vhca_id"`
	VUID          string `json:"vuid"`
	CtrlID        string `json:"ctrl_id"`
}

type snapPFWire struct {
	Hotplugged    bool         `json:"hotplugged"`
	EmulationType string       `json:"emulation_type"`
	PFIndex       int          `json:"pf_index"`
	PCIBDF        string       `json:"pci_bdf"`
	VhcaID        int          `json:"vhca_id"`
	VUID          string       `json:"vuid"`
	CtrlID        string       `json:"ctrl_id"`
	VFs           []snapVFWire `json:"vfs"`
}

// listFunctions calls emulation_function_list (every type, PFs then their
// VFs) and caches the answer for ValidateFunction.
func (s *Storage) listFunctions(ctx context.Context) ([]EmulationFunction, error) {
	var pfs []snapPFWire
	if err := s.o.Client.Call(ctx, "emulation_function_list", map[string]any{"all": true}, &pfs); err != nil {
		return nil, err
	}
	out := []EmulationFunction{}
	for _, pf := range pfs {
		out = append(out, EmulationFunction{Type: pf.EmulationType, PF: pf.PFIndex, PCIBDF: pf.PCIBDF, VUID: pf.VUID,
			VhcaID: pf.VhcaID, CtrlID: pf.CtrlID, Hotplugged: pf.Hotplugged})
		for _, vf := range pf.VFs {
			typ := vf.EmulationType
			if typ == "" {
				typ = pf.EmulationType
			}
			out = append(out, EmulationFunction{Type: typ, PF: pf.PFIndex, VF: nodestate.IntPtr(vf.VFIndex), PCIBDF: vf.PCIBDF,
				VUID: vf.VUID, VhcaID: vf.VhcaID, CtrlID: vf.CtrlID, Hotplugged: vf.Hotplugged})
		}
	}
	s.mu.Lock()
	s.fns, s.fnsAt = out, time.Now()
	s.mu.Unlock()
	return out, nil
}

// nvmeFunction finds the NVMe emulation function of f.
func nvmeFunction(fns []EmulationFunction, f nodestate.Function) (EmulationFunction, bool) {
	for _, e := range fns {
		if e.Type == EmulationTypeNVMe && e.Function().Equal(f) {
			return e, true
		}
	}
	return EmulationFunction{}, false
}

// notEmulated is the admission error for a function SNAP does not have.
func notEmulated(f nodestate.Function, fns []EmulationFunction) error {
	var have []string
	for _, e := range fns {
		if e.Type == EmulationTypeNVMe {
			have = append(have, e.describe())
		}
	}
	list := "none"
	if len(have) > 0 {
		list = strings.Join(have, ", ")
	}
	return fmt.Errorf("%w: function %s: SNAP does not emulate it, %w (NVMe emulation functions: %s; VFs appear once the host enables SR-IOV on their PF)",
		errdefs.ErrInvalidArgument, f, drivers.ErrFunctionAbsent, list)
}

// ValidateFunction implements drivers.StorageDriver against the NVMe
// functions SNAP reports. It never waits long for SNAP: it uses the list
// the last reconcile read, fetching it (bounded by ListTimeout) only when it
// has none or when f is missing from a list older than a second. When SNAP
// cannot be asked, f is admitted: the reconcile then fails on that volume
// with SNAP's error, or with this same refusal once SNAP answers (see
// EnsureController), and converges by itself when it can.
func (s *Storage) ValidateFunction(f nodestate.Function) error {
	if err := nodestate.ValidateFunction(f); err != nil {
		return err
	}
	if f.SF != nil {
		return fmt.Errorf("%w: function %s: SNAP emulates NVMe on PFs and VFs, not SFs", errdefs.ErrNotSupported, f)
	}
	fns, known := s.functionsFor(f)
	if !known {
		s.log.Debug("SNAP function list unknown: admitting", zap.Stringer("function", f))
		return nil
	}
	if _, ok := nvmeFunction(fns, f); ok {
		return nil
	}
	return notEmulated(f, fns)
}

// functionsFor returns a function list good enough to judge f, and whether
// there is one.
func (s *Storage) functionsFor(f nodestate.Function) ([]EmulationFunction, bool) {
	usable := func() ([]EmulationFunction, bool, bool) { // list, judge with it, back off
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fns != nil {
			if _, ok := nvmeFunction(s.fns, f); ok || time.Since(s.fnsAt) < listFreshFor {
				return s.fns, true, false
			}
		}
		return nil, false, !s.failAt.IsZero() && time.Since(s.failAt) < listRetryAfter
	}
	if fns, ok, _ := usable(); ok {
		return fns, true
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another caller may have fetched (or failed) while this one waited.
	fns, ok, backoff := usable()
	if ok {
		return fns, true
	}
	if backoff {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.o.ListTimeout)
	defer cancel()
	fns, err := s.listFunctions(ctx)
	if err != nil {
		s.mu.Lock()
		s.failAt = time.Now()
		s.mu.Unlock()
		s.log.Warn("SNAP emulation_function_list failed: admitting functions unchecked", zap.Error(err))
		return nil, false
	}
	return fns, true
}

// ctrlRefs decodes a list of {"ctrl_id": …} objects, skipping anything else.
type ctrlRefs []string

func (c *ctrlRefs) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, r := range raw {
		var o struct {
			CtrlID string `json:"ctrl_id"`
		}
		if json.Unmarshal(r, &o) == nil && o.CtrlID != "" {
			*c = append(*c, o.CtrlID)
		}
	}
	return nil
}

func (c ctrlRefs) has(id string) bool { return slices.Contains(c, id) }

type snapNamespace struct {
	NSID        int      `json:"nsid"`
	Bdev        string   `json:"bdev"`
	UUID        string   `json:"uuid"`
	Controllers ctrlRefs `json:"controllers"`
}

type snapSubsystem struct {
	NQN         string          `json:"nqn"`
	Controllers ctrlRefs        `json:"controllers"`
	Namespaces  []snapNamespace `json:"namespaces"`
}

func (s *Storage) listSubsystems(ctx context.Context) ([]snapSubsystem, error) {
	var subs []snapSubsystem
	err := s.o.Client.Call(ctx, "nvme_subsystem_list", nil, &subs)
	return subs, err
}

// ownerOf is the subsystem holding controller id ("" when none lists it).
func ownerOf(subs []snapSubsystem, id string) string {
	for _, sub := range subs {
		if sub.Controllers.has(id) {
			return sub.NQN
		}
	}
	return ""
}

// agentBdev reports whether the agent made bdev (its volumes and config
// drives are all named with backend.Prefix).
func agentBdev(bdev string) bool { return strings.HasPrefix(bdev, backend.Prefix) }

// attached lists sub's namespaces attached to ctrl (only the agent's when
// mine).
func attached(sub snapSubsystem, ctrl string, mine bool) []drivers.HostNamespace {
	var out []drivers.HostNamespace
	for _, ns := range sub.Namespaces {
		if ns.Controllers.has(ctrl) && (!mine || agentBdev(ns.Bdev)) {
			out = append(out, drivers.HostNamespace{NSID: ns.NSID, Bdev: ns.Bdev, UUID: ns.UUID})
		}
	}
	return out
}

func (s *Storage) remember(ctrl, nqn string) {
	s.mu.Lock()
	s.subsys[ctrl] = nqn
	s.mu.Unlock()
}

func (s *Storage) forget(ctrl string) {
	s.mu.Lock()
	delete(s.subsys, ctrl)
	delete(s.resumed, ctrl)
	s.mu.Unlock()
}

func (s *Storage) isResumed(ctrl string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumed[ctrl]
}

// Controllers implements drivers.StorageDriver (emulation_function_list and
// nvme_subsystem_list). It lists the agent's subsystems (one of them
// without a controller is a create that failed half-way: empty ID) and the
// controllers it adopted: those in other subsystems with one of the agent's
// bdevs attached, with only the agent's namespaces. Active is whether this
// process resumed the controller: SNAP publishes no field saying it.
func (s *Storage) Controllers(ctx context.Context) ([]drivers.HostController, error) {
	fns, err := s.listFunctions(ctx)
	if err != nil {
		return nil, err
	}
	subs, err := s.listSubsystems(ctx)
	if err != nil {
		return nil, err
	}
	byFn := map[string]drivers.HostController{}
	for _, sub := range subs {
		if f, ok := drivers.ParseHostSubsystemNQN(s.o.NodeUUID, sub.NQN); ok {
			hc := drivers.HostController{Function: f}
			if len(sub.Controllers) > 0 {
				hc.ID = sub.Controllers[0]
				hc.Active = s.isResumed(hc.ID)
				hc.Namespaces = attached(sub, hc.ID, false)
				s.remember(hc.ID, sub.NQN)
			}
			if prev, dup := byFn[f.String()]; !dup || prev.ID == "" {
				byFn[f.String()] = hc
			}
			continue
		}
		for _, ctrl := range sub.Controllers {
			nss := attached(sub, ctrl, true)
			if len(nss) == 0 {
				continue // not (yet) adopted: nothing of the agent's in it
			}
			for _, fn := range fns {
				if fn.Type == EmulationTypeNVMe && fn.CtrlID == ctrl {
					s.remember(ctrl, sub.NQN)
					byFn[fn.Function().String()] = drivers.HostController{Function: fn.Function(), ID: ctrl,
						Active: s.isResumed(ctrl), Namespaces: nss}
				}
			}
		}
	}
	out := make([]drivers.HostController, 0, len(byFn))
	for _, hc := range byFn {
		out = append(out, hc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function.String() < out[j].Function.String() })
	return out, nil
}

// EnsureController implements drivers.StorageDriver: it adopts the
// controller f's function already holds, or creates the agent's subsystem
// (unless cur says it exists) and a suspended controller on the function.
func (s *Storage) EnsureController(ctx context.Context, f nodestate.Function, cur *drivers.HostController) (drivers.HostController, error) {
	if cur != nil && cur.ID != "" {
		return *cur, nil
	}
	fns, err := s.listFunctions(ctx)
	if err != nil {
		return drivers.HostController{}, err
	}
	fn, ok := nvmeFunction(fns, f)
	if !ok {
		return drivers.HostController{}, notEmulated(f, fns)
	}
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, f)
	if fn.CtrlID != "" {
		subs, err := s.listSubsystems(ctx)
		if err != nil {
			return drivers.HostController{}, err
		}
		owner := ownerOf(subs, fn.CtrlID)
		if owner == "" {
			return drivers.HostController{}, fmt.Errorf("%w: function %s holds controller %s, which no subsystem lists",
				errdefs.ErrStorage, fn.describe(), fn.CtrlID)
		}
		if owner != nqn {
			s.log.Info("adopting SNAP NVMe controller", zap.Stringer("function", f), zap.String("ctrl_id", fn.CtrlID),
				zap.String("subsystem", owner))
			if cur != nil { // the agent's own subsystem, left by a create that never got its controller
				if err := s.destroyOwnSubsystem(ctx, nqn, subs); err != nil {
					return drivers.HostController{}, err
				}
			}
		}
		s.remember(fn.CtrlID, owner)
		return drivers.HostController{Function: f, ID: fn.CtrlID, Active: s.isResumed(fn.CtrlID)}, nil
	}
	if cur == nil {
		err := s.o.Client.Call(ctx, "nvme_subsystem_create", map[string]any{"nqn": nqn}, nil)
		if err != nil && !spdk.HasCode(err, spdk.CodeEEXIST) {
			return drivers.HostController{}, err
		}
	}
	p := map[string]any{"nqn": nqn, "suspended": true}
	switch {
	case fn.PCIBDF != "" && fn.PCIBDF != "00:00.0": // NVIDIA's client reads 00:00.0 as "no address yet"
		p["pci_bdf"] = fn.PCIBDF
	case fn.VUID != "":
		p["vuid"] = fn.VUID
	default:
		return drivers.HostController{}, fmt.Errorf("%w: function %s: SNAP reports neither pci_bdf nor vuid", errdefs.ErrStorage, f)
	}
	var res struct {
		CtrlID string `json:"ctrl_id"`
	}
	if err := s.o.Client.Call(ctx, "nvme_controller_create", p, &res); err != nil {
		return drivers.HostController{}, err
	}
	if res.CtrlID == "" {
		return drivers.HostController{}, fmt.Errorf("%w: nvme_controller_create returned no ctrl_id", errdefs.ErrStorage)
	}
	s.forget(res.CtrlID) // a new controller: SNAP may reuse the name of one it lost
	s.remember(res.CtrlID, nqn)
	logctx.Logger(ctx, s.log).Info("created SNAP NVMe controller", zap.String("nqn", nqn), zap.String("ctrl_id", res.CtrlID),
		zap.String("function", fn.describe()))
	return drivers.HostController{Function: f, ID: res.CtrlID}, nil
}

// destroyOwnSubsystem removes the agent's subsystem nqn and its
// (unattached) namespaces, if it exists.
func (s *Storage) destroyOwnSubsystem(ctx context.Context, nqn string, subs []snapSubsystem) error {
	for _, sub := range subs {
		if sub.NQN != nqn {
			continue
		}
		for _, ns := range sub.Namespaces {
			err := s.o.Client.Call(ctx, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": ns.NSID}, nil)
			if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
				return err
			}
		}
		err := s.o.Client.Call(ctx, "nvme_subsystem_destroy", map[string]any{"nqn": nqn}, nil)
		if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
			return err
		}
	}
	return nil
}

// subsystemOf is the NQN of the subsystem holding c's namespaces: the
// agent's own, or the adopted controller's.
func (s *Storage) subsystemOf(ctx context.Context, c drivers.HostController) (string, error) {
	own := drivers.HostSubsystemNQN(s.o.NodeUUID, c.Function)
	if c.ID == "" {
		return own, nil
	}
	s.mu.Lock()
	nqn, ok := s.subsys[c.ID]
	s.mu.Unlock()
	if ok {
		return nqn, nil
	}
	subs, err := s.listSubsystems(ctx)
	if err != nil {
		return "", err
	}
	if nqn = ownerOf(subs, c.ID); nqn == "" {
		nqn = own
	}
	s.remember(c.ID, nqn)
	return nqn, nil
}

// AddNamespace implements drivers.StorageDriver.
func (s *Storage) AddNamespace(ctx context.Context, c drivers.HostController, ns drivers.HostNamespace) error {
	nqn, err := s.subsystemOf(ctx, c)
	if err != nil {
		return err
	}
	p := map[string]any{"nqn": nqn, "nsid": ns.NSID, "bdev_name": ns.Bdev, "bdev_type": "spdk"}
	if ns.UUID != "" {
		p["uuid"] = ns.UUID
	}
	err = s.o.Client.Call(ctx, "nvme_namespace_create", p, nil)
	if spdk.HasCode(err, spdk.CodeEEXIST) {
		err = s.replaceNamespace(ctx, nqn, ns.NSID, p)
	}
	if err != nil {
		return err
	}
	return s.o.Client.Call(ctx, "nvme_controller_attach_ns", map[string]any{"ctrl_id": c.ID, "nsid": ns.NSID}, nil)
}

// replaceNamespace recreates nsid of nqn when the namespace there is one
// of the agent's left detached by a half-done attempt (the reconciler saw
// it detached); anything else at that nsid is not the agent's to touch.
func (s *Storage) replaceNamespace(ctx context.Context, nqn string, nsid int, p map[string]any) error {
	subs, err := s.listSubsystems(ctx)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if sub.NQN != nqn {
			continue
		}
		for _, ns := range sub.Namespaces {
			if ns.NSID != nsid {
				continue
			}
			if !agentBdev(ns.Bdev) || len(ns.Controllers) > 0 {
				return fmt.Errorf("%w: nsid %d of subsystem %s holds bdev %s (attached to %v), which the agent may not replace",
					errdefs.ErrConflict, nsid, nqn, ns.Bdev, []string(ns.Controllers))
			}
			if err := s.o.Client.Call(ctx, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": nsid}, nil); err != nil {
				return err
			}
			return s.o.Client.Call(ctx, "nvme_namespace_create", p, nil)
		}
	}
	// Gone since: create it now.
	return s.o.Client.Call(ctx, "nvme_namespace_create", p, nil)
}

// RemoveNamespace implements drivers.StorageDriver: detach from the
// controller (host hot-unplug), then destroy; missing pieces are fine.
func (s *Storage) RemoveNamespace(ctx context.Context, c drivers.HostController, nsid int) error {
	nqn, err := s.subsystemOf(ctx, c)
	if err != nil {
		return err
	}
	if c.ID != "" {
		err = s.o.Client.Call(ctx, "nvme_controller_detach_ns", map[string]any{"ctrl_id": c.ID, "nsid": nsid}, nil)
		if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
			return err
		}
	}
	err = s.o.Client.Call(ctx, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": nsid}, nil)
	if spdk.HasCode(err, spdk.CodeENODEV) {
		return nil
	}
	return err
}

// Activate implements drivers.StorageDriver: nvme_controller_resume, sent
// once per controller and agent process (after a restart, or a failed
// resume, again: resuming a running controller is harmless, as NVIDIA's
// client assumes when it resumes after every attach).
func (s *Storage) Activate(ctx context.Context, c drivers.HostController) error {
	if err := s.o.Client.Call(ctx, "nvme_controller_resume", map[string]any{"ctrl_id": c.ID}, nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.resumed[c.ID] = true
	s.mu.Unlock()
	return nil
}

// RemoveController implements drivers.StorageDriver. An adopted controller
// only loses the agent's namespaces: it and its subsystem stay.
func (s *Storage) RemoveController(ctx context.Context, c drivers.HostController) error {
	nqn, err := s.subsystemOf(ctx, c)
	if err != nil {
		return err
	}
	for _, ns := range c.Namespaces {
		if err := s.RemoveNamespace(ctx, c, ns.NSID); err != nil {
			return err
		}
	}
	if nqn != drivers.HostSubsystemNQN(s.o.NodeUUID, c.Function) {
		s.forget(c.ID)
		s.log.Info("released adopted SNAP NVMe controller", zap.String("ctrl_id", c.ID), zap.String("subsystem", nqn))
		return nil
	}
	if c.ID != "" {
		err := s.o.Client.Call(ctx, "nvme_controller_destroy", map[string]any{"ctrl_id": c.ID, "force": true}, nil)
		if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
			return err
		}
		s.forget(c.ID)
	}
	err = s.o.Client.Call(ctx, "nvme_subsystem_destroy", map[string]any{"nqn": nqn}, nil)
	if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
		return err
	}
	logctx.Logger(ctx, s.log).Info("removed SNAP NVMe controller", zap.String("nqn", nqn), zap.String("ctrl_id", c.ID))
	return nil
}

// SuspendController implements storage.Quiescer: nvme_controller_suspend
// with the controller alone (docs/bluefield-snap.md §2.2: NVIDIA's scripts
// name it with --ctrl, which NVIDIA's JSON client sends as "ctrl_id" for
// resume and attach; none of the live-update flags is sent). c stays
// "resumed" for Activate: a reconcile must not resume a quiesced host.
func (s *Storage) SuspendController(ctx context.Context, c drivers.HostController) error {
	if c.ID == "" {
		return fmt.Errorf("%w: bluefield: no SNAP controller on %s to suspend", errdefs.ErrInvalidArgument, c.Function)
	}
	return s.o.Client.Call(ctx, "nvme_controller_suspend", map[string]any{"ctrl_id": c.ID}, nil)
}

// ResumeController implements storage.Quiescer: nvme_controller_resume, as
// Activate sends it; a controller SNAP no longer has (-19) is success.
func (s *Storage) ResumeController(ctx context.Context, c drivers.HostController) error {
	err := s.o.Client.Call(ctx, "nvme_controller_resume", map[string]any{"ctrl_id": c.ID}, nil)
	if spdk.HasCode(err, spdk.CodeENODEV) {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.resumed[c.ID] = true
	s.mu.Unlock()
	return nil
}
