// Package agent is the daemon core: it owns the desired state, admits changes
// from RPC (validate, persist, reconcile), runs the periodic and on-demand
// reconcile loop, and reports status.
package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Options wires an Agent.
type Options struct {
	NodeUUID    string
	DriverName  string
	Store       *state.Store
	Reconcilers []Reconciler
	// Interval is the period of the background reconcile (jittered).
	Interval time.Duration
	// HealthInterval is how often component health is probed; a component
	// that comes back (SPDK or OVSDB restarted) triggers a reconcile at once
	// instead of at the next period. Default 5s.
	HealthInterval time.Duration
	// SFBase is the lowest SF number allocated for VIFs that name no function.
	SFBase int
	// Limits bound the VIFs and volumes of one desired state.
	Limits state.Limits
	// RPCHealth reports the RPC connection's health (nil = healthy); may be
	// set later with SetRPCHealth once the server exists.
	RPCHealth func() error
	// Pull, when set, fetches the node's desired state from Ironic. Run
	// calls it after restoring the persisted state and adopts a newer
	// generation; it retries on each periodic tick until one pull succeeds.
	Pull func(ctx context.Context) (*state.Desired, error)
	// PullTimeout bounds one Pull (default 30s): the loop waits for it.
	PullTimeout time.Duration
	Logger      *zap.Logger
}

// Agent is the daemon core. Its methods are safe for concurrent use.
type Agent struct {
	opts Options
	log  *zap.Logger

	// opMu serialises admissions and reconciles: one change at a time.
	opMu sync.Mutex

	mu            sync.RWMutex // guards the fields below
	desired       *state.Desired
	lastReconcile time.Time
	lastErr       error
	lastDuration  time.Duration
	reconciles    uint64
	failures      uint64
	// health is the last background probe of each component (nil = healthy).
	health    map[string]error
	rpcHealth func() error

	trigger chan struct{}
}

// New loads the persisted desired state. It does not reconcile; Run does.
func New(opts Options) (*Agent, error) {
	if opts.Store == nil {
		return nil, errors.New("agent: no state store")
	}
	if !state.ValidUUID(opts.NodeUUID) {
		return nil, fmt.Errorf("agent: node_uuid %q is not a UUID", opts.NodeUUID)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.PullTimeout <= 0 {
		opts.PullTimeout = 30 * time.Second
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = 5 * time.Second
	}
	d, err := opts.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("agent: load desired state: %w", err)
	}
	// Another node's state (node_uuid changed, state_dir kept) would expose
	// that node's volumes and ports to this host: touch nothing, say why.
	if d.NodeUUID != "" && !strings.EqualFold(d.NodeUUID, opts.NodeUUID) {
		return nil, fmt.Errorf("%w: agent: %s holds the desired state of node %s, but this agent serves node %s; move it away to start empty",
			errdefs.ErrConflict, opts.Store.Path(), d.NodeUUID, opts.NodeUUID)
	}
	a := &Agent{
		opts:      opts,
		log:       opts.Logger,
		desired:   d,
		rpcHealth: opts.RPCHealth,
		trigger:   make(chan struct{}, 1),
	}
	a.log.Info("desired state loaded", zap.Int64("generation", d.Generation),
		zap.Int("volumes", len(d.Volumes)), zap.Int("vifs", len(d.VIFs)))
	return a, nil
}

// SetRPCHealth installs the RPC health probe (the server is built after the agent).
func (a *Agent) SetRPCHealth(f func() error) {
	a.mu.Lock()
	a.rpcHealth = f
	a.mu.Unlock()
}

// RequestReconcile asks the loop for a reconcile soon; it never blocks. Used
// after reconnects to the broker, SPDK or OVSDB.
func (a *Agent) RequestReconcile() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Run restores the persisted state at once, then reconciles on request and on
// a jittered period until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	a.recovered(ctx) // first health probe
	pulled := a.opts.Pull == nil
	if !pulled && a.Desired().Generation == 0 {
		// No state of our own (new DPU, wiped state_dir): ask Ironic before
		// anything else, so a running host's disks and NICs are not judged
		// against an empty state.
		pulled = a.pull(ctx)
	}
	a.reconcileNow(ctx, "start")
	if !pulled {
		pulled = a.pull(ctx)
	}
	timer := time.NewTimer(a.jittered())
	defer timer.Stop()
	health := time.NewTicker(a.opts.HealthInterval)
	defer health.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.trigger:
			a.reconcileNow(ctx, "requested")
		case <-health.C:
			if a.recovered(ctx) {
				a.reconcileNow(ctx, "component recovered")
			}
		case <-timer.C:
			if !pulled {
				pulled = a.pull(ctx)
			}
			a.reconcileNow(ctx, "periodic")
			timer.Reset(a.jittered())
		}
	}
}

// probe asks every component for its health.
func (a *Agent) probe(ctx context.Context) map[string]error {
	hctx, cancel := context.WithTimeout(ctx, a.opts.HealthInterval)
	defer cancel()
	out := make(map[string]error, len(a.opts.Reconcilers))
	for _, r := range a.opts.Reconcilers {
		out[r.Name()] = r.Health(hctx)
	}
	return out
}

// recovered probes every component, records the result for Status, and
// reports whether one that was down is up again.
func (a *Agent) recovered(ctx context.Context) bool {
	now := a.probe(ctx)
	a.mu.Lock()
	prev := a.health
	a.health = now
	a.mu.Unlock()
	back := false
	for name, err := range now {
		if was, seen := prev[name]; err == nil && seen && was != nil {
			a.log.Info("component is reachable again; reconciling", zap.String("component", name))
			back = true
		}
	}
	return back
}

// pull adopts Ironic's recorded desired state when it is newer than ours. It
// reports whether the pull itself succeeded.
func (a *Agent) pull(ctx context.Context) bool {
	// Bounded: the loop waits for it, and an Ironic API that accepts but
	// never answers must not stop the reconciles (retried next period).
	pctx, cancel := context.WithTimeout(ctx, a.opts.PullTimeout)
	d, err := a.opts.Pull(pctx)
	cancel()
	if err != nil {
		a.log.Warn("could not pull the desired state from Ironic; will retry", zap.Error(err))
		return false
	}
	cur := a.Desired()
	if d == nil || d.Generation <= cur.Generation {
		a.log.Info("desired state is current with Ironic", zap.Int64("generation", cur.Generation))
		return true
	}
	a.log.Info("adopting newer desired state from Ironic", zap.Int64("generation", d.Generation), zap.Int64("had", cur.Generation))
	if _, err := a.ApplyState(ctx, d); err != nil {
		// Invalid recorded state is final; a reconcile error is retried by the loop.
		a.log.Warn("applying the state pulled from Ironic", zap.Error(err))
	}
	return true
}

func (a *Agent) jittered() time.Duration {
	// ±20% so a fleet of DPUs rebooted together does not hit SPDK/OVSDB in step.
	f := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(a.opts.Interval) * f)
}

func (a *Agent) reconcileNow(ctx context.Context, reason string) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if err := a.reconcileLocked(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("reconcile incomplete", zap.String("reason", reason), zap.Error(err))
	}
}

// reconcileLocked runs every reconciler against the current desired state.
// Caller holds opMu.
func (a *Agent) reconcileLocked(ctx context.Context) error {
	d := a.Desired()
	if d.Generation == 0 {
		// Generation 0 means "never told" (admitted states start at 1), not
		// "nothing": leave whatever the DPU holds alone until a desired state
		// arrives over RPC or from Ironic.
		a.log.Info("no desired state yet; leaving the DPU as it is")
		return nil
	}
	start := time.Now()
	var errs []error
	for _, r := range a.opts.Reconcilers {
		if err := r.Reconcile(ctx, d); err != nil {
			errs = append(errs, &componentError{name: r.Name(), err: err})
		}
	}
	err := errors.Join(errs...)
	a.mu.Lock()
	a.lastReconcile = time.Now()
	a.lastErr = err
	a.lastDuration = time.Since(start)
	a.reconciles++
	if err != nil {
		a.failures++
	}
	a.mu.Unlock()
	a.log.Debug("reconciled", zap.Int64("generation", d.Generation), zap.Duration("took", time.Since(start)), zap.Error(err))
	return err
}

// Desired returns a copy of the current desired state.
func (a *Agent) Desired() *state.Desired {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.desired.Clone()
}

// View is what get_state and apply_state return.
type View struct {
	Desired  *state.Desired `json:"desired"`
	Observed state.Observed `json:"observed"`
}

// State returns the desired and observed state.
func (a *Agent) State(ctx context.Context) View {
	v := View{Desired: a.Desired(), Observed: state.Observed{Volumes: []state.VolumeStatus{}, VIFs: []state.VIFStatus{}}}
	for _, r := range a.opts.Reconcilers {
		r.Observe(ctx, &v.Observed)
	}
	return v
}

// ApplyState replaces the desired state. Validation happens before anything
// is persisted; once persisted, the state is reconciled and a reconcile error
// is returned (the agent keeps retrying in the background).
func (a *Agent) ApplyState(ctx context.Context, next *state.Desired) (View, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if next.Generation < 1 {
		return View{}, fmt.Errorf("%w: generation must be 1 or more (0 means no desired state)", errdefs.ErrInvalidArgument)
	}
	cur := a.Desired()
	if next.Generation < cur.Generation {
		return View{}, fmt.Errorf("%w: generation %d is older than the agent's generation %d", errdefs.ErrConflict, next.Generation, cur.Generation)
	}
	if next.Generation == cur.Generation && cur.Generation != 0 {
		// A retry of the same generation is fine; other content under a used
		// generation number means two writers disagree.
		cand := next.Clone()
		cand.Normalize()
		if err := state.AssignFunctions(cur, cand, a.opts.SFBase); err != nil || !sameContent(cur, cand) {
			return View{}, fmt.Errorf("%w: generation %d was already applied with other content; send a newer generation", errdefs.ErrConflict, next.Generation)
		}
		err := a.reconcileLocked(ctx)
		return a.State(ctx), err
	}
	if err := a.admitLocked(ctx, cur, next); err != nil {
		return View{}, err
	}
	err := a.reconcileLocked(ctx)
	return a.State(ctx), err
}

// Component names of the reconcilers, as single-item edits report them.
const (
	ComponentStorage = "storage"
	ComponentNetwork = "network"
)

// componentError is one reconciler's failure inside a reconcile.
type componentError struct {
	name string
	err  error
}

func (e *componentError) Error() string { return e.name + ": " + e.err.Error() }
func (e *componentError) Unwrap() error { return e.err }

// only keeps the failures of component from a reconcile error: a plug_vif
// must not fail because SPDK is down (the storage failure is still recorded
// in the status and retried).
func only(component string, err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var keep []error
	for _, e := range joined.Unwrap() {
		if ce, ok := e.(*componentError); !ok || ce.name == component {
			keep = append(keep, e)
		}
	}
	return errors.Join(keep...)
}

// edit applies fn to a copy of the desired state as a new generation and
// reconciles; it reports the failures of component only.
func (a *Agent) edit(ctx context.Context, component string, fn func(d *state.Desired) error) error {
	cur := a.Desired()
	next := cur.Clone()
	if err := fn(next); err != nil {
		return err
	}
	if sameContent(cur, next) {
		// Idempotent repeat: nothing to persist, but still make sure the DPU
		// matches (it may have drifted).
		return only(component, a.reconcileLocked(ctx))
	}
	if cur.Generation == 0 {
		next.Generation = 1
	} else {
		next.Generation = cur.Generation + 1
	}
	if err := a.admitLocked(ctx, cur, next); err != nil {
		return err
	}
	return only(component, a.reconcileLocked(ctx))
}

// admitLocked validates next (generic, then per reconciler), allocates host
// functions, and persists it. Caller holds opMu.
func (a *Agent) admitLocked(ctx context.Context, cur, next *state.Desired) error {
	if next.NodeUUID != "" && !strings.EqualFold(next.NodeUUID, a.opts.NodeUUID) {
		return fmt.Errorf("%w: state is for node %s but this agent serves node %s", errdefs.ErrInvalidArgument, next.NodeUUID, a.opts.NodeUUID)
	}
	next.NodeUUID = a.opts.NodeUUID
	if next.Volumes == nil {
		next.Volumes = []state.Volume{}
	}
	if next.VIFs == nil {
		next.VIFs = []state.VIF{}
	}
	if err := next.CheckLimits(a.opts.Limits); err != nil { // before any per-item work
		return err
	}
	next.Normalize()
	if err := next.Validate(); err != nil {
		return err
	}
	if err := state.AssignFunctions(cur, next, a.opts.SFBase); err != nil {
		return err
	}
	if err := next.Validate(); err != nil { // allocated functions must not collide
		return err
	}
	for _, r := range a.opts.Reconcilers {
		if err := r.Validate(ctx, next); err != nil {
			return fmt.Errorf("%s: %w", r.Name(), err)
		}
	}
	for _, r := range a.opts.Reconcilers {
		if ad, ok := r.(Admitter); ok {
			if err := ad.Admit(ctx, next); err != nil {
				return fmt.Errorf("%s: %w", r.Name(), err)
			}
		}
	}
	if next.ConfigDrive != nil {
		next.ConfigDrive.Data = "" // the image file is the durable copy
	}
	if err := a.opts.Store.Save(next); err != nil {
		return fmt.Errorf("%w: persist desired state: %v", errdefs.ErrUnavailable, err)
	}
	a.mu.Lock()
	a.desired = next
	a.mu.Unlock()
	a.log.Info("desired state admitted", zap.Int64("generation", next.Generation),
		zap.Int("volumes", len(next.Volumes)), zap.Int("vifs", len(next.VIFs)))
	return nil
}

func sameContent(a, b *state.Desired) bool {
	x, y := a.Clone(), b.Clone()
	x.Generation, y.Generation = 0, 0
	x.NodeUUID, y.NodeUUID = "", ""
	// The config drive is its sha256: a retry carrying the data again is
	// the same state.
	for _, d := range []*state.Desired{x, y} {
		if d.ConfigDrive != nil {
			d.ConfigDrive.Data = ""
		}
	}
	return equalJSON(x, y)
}
