// Package agent is the daemon core: it owns the desired state, admits changes
// from RPC (validate, persist, trigger), runs one reconcile loop per
// component (periodic, on demand, and retried with backoff), and reports
// status.
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
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/ticker"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Options wires an Agent.
type Options struct {
	NodeUUID    string
	DriverName  string
	Store       *state.Store
	Reconcilers []Reconciler
	// Interval is the period of the background reconcile (jittered); it
	// also caps the retry backoff of a failed reconcile.
	Interval time.Duration
	// RetryBase is the first retry delay after a failed reconcile (default
	// 1s); it doubles per consecutive failure up to Interval, with jitter.
	RetryBase time.Duration
	// ItemWait bounds how long a single-item edit (attach_volume, plug_vif,
	// ...) waits for its own component to converge (default 20s); it never
	// waits for the other component.
	ItemWait time.Duration
	// HealthInterval is how often component health is probed; a component
	// that comes back (SPDK or OVSDB restarted) triggers a reconcile at once
	// instead of at the next period. Default 5s.
	HealthInterval time.Duration
	// SFBase is the lowest SF number allocated for VIFs that name no function.
	SFBase int
	// Quiescer, when set, serves quiesce/unquiesce (RPC API 1.3); Run runs
	// it. Without it both calls are NotSupported.
	Quiescer HostQuiescer
	// Limits bound the VIFs and volumes of one desired state.
	Limits nodestate.Limits
	// RPCHealth reports the RPC connection's health (nil = healthy), e.g.
	// an rpcapi.Link's Health: the link is made before the agent and the
	// server alike.
	RPCHealth func() error
	// Wakeup, when set, carries reconcile requests from the components'
	// connection goroutines; Run serves it.
	Wakeup *Wakeup
	// Liveness, when set, gets one beat per component loop, named
	// "reconcile/<component>" (/livez and the systemd watchdog read it).
	Liveness *liveness.Monitor
	Logger   *zap.Logger
}

// Agent is the daemon core. Its methods are safe for concurrent use.
//
// Admissions (validate, assign functions, persist) are serialised by
// admitMu, which is never held while SPDK or OVSDB is called. Each
// component reconciles in its own loop (Run starts them), so a hung SPDK
// delays neither a NIC plug nor an apply_state.
type Agent struct {
	opts Options
	log  *zap.Logger

	admitMu sync.Mutex // one admission at a time; held only for validate+persist

	loops  []*loop
	byName map[string]*loop

	mu      sync.RWMutex // guards the fields below
	desired *nodestate.Desired
	// admission records what admitted desired's generation (nil: unknown,
	// e.g. a state migrated from schema 1).
	admission *state.Admission
	// health is the last background probe of each component (nil = healthy).
	health map[string]error
}

// New loads the persisted desired state. It does not reconcile; Run does.
func New(opts Options) (*Agent, error) {
	if opts.Store == nil {
		return nil, errors.New("agent: no state store")
	}
	if !nodestate.ValidUUID(opts.NodeUUID) {
		return nil, fmt.Errorf("agent: node_uuid %q is not a UUID", opts.NodeUUID)
	}
	opts = withDefaults(opts)
	loaded, err := opts.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("agent: load desired state: %w", err)
	}
	d := loaded.Desired
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
		admission: loaded.Admission,
		byName:    map[string]*loop{},
	}
	for _, r := range opts.Reconcilers {
		var beat *liveness.Beat
		if opts.Liveness != nil {
			beat = opts.Liveness.Register("reconcile/" + r.Name())
		}
		l := newLoop(r, a.snapshot, a.log, opts.RetryBase, opts.Interval, beat)
		a.loops = append(a.loops, l)
		a.byName[r.Name()] = l
	}
	if len(loaded.Unknown) > 0 {
		// A newer agent of the same schema major added them; the next
		// save drops them (README "RPC API", fields from a newer peer).
		a.log.Warn("ignoring fields of the state file this agent does not know", zap.String("file", opts.Store.Path()),
			zap.String("schema_version", loaded.Schema), zap.Strings("fields", loaded.Unknown))
	}
	a.log.Info("desired state loaded", zap.Int64("generation", d.Generation), zap.String("schema_version", loaded.Schema),
		zap.Int("volumes", len(d.Volumes)), zap.Int("vifs", len(d.VIFs)))
	return a, nil
}

func withDefaults(o Options) Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	o.RetryBase = min(o.RetryBase, o.Interval)
	if o.ItemWait <= 0 {
		o.ItemWait = 20 * time.Second
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 5 * time.Second
	}
	return o
}

// RequestReconcile asks every component loop for a reconcile soon; it never
// blocks. Used after reconnects to the broker, SPDK or OVSDB.
func (a *Agent) RequestReconcile() {
	for _, l := range a.loops {
		l.request()
	}
}

// Run starts the component loops, restores the persisted state at once,
// then reconciles on request, on component recovery and on a jittered period
// until ctx is done. It returns after every goroutine it started stopped.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, l := range a.loops {
		wg.Go(func() { l.run(ctx) })
	}
	a.RequestReconcile() // start
	wg.Go(func() { a.watchHealth(ctx) })
	if w := a.opts.Wakeup; w != nil {
		wg.Go(func() { a.serveWakeup(ctx, w) })
	}
	if q := a.opts.Quiescer; q != nil {
		wg.Go(func() { q.Run(ctx) })
	}
	timer := time.NewTimer(a.jittered())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			a.RequestReconcile()
			timer.Reset(a.jittered())
		}
	}
}

// serveWakeup turns w's requests into reconcile requests until ctx is done.
func (a *Agent) serveWakeup(ctx context.Context, w *Wakeup) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.c:
			a.RequestReconcile()
		}
	}
}

// watchHealth probes the components every HealthInterval and asks for a
// reconcile when one comes back.
func (a *Agent) watchHealth(ctx context.Context) {
	a.recovered(ctx) // first probe, for Status
	ticker.Every(ctx, a.opts.HealthInterval, func(ctx context.Context) {
		if a.recovered(ctx) {
			a.RequestReconcile()
		}
	})
}

// probe asks every component for its health, concurrently: a hung SPDK
// must not hold up the network probe.
func (a *Agent) probe(ctx context.Context) map[string]error {
	hctx, cancel := context.WithTimeout(ctx, a.opts.HealthInterval)
	defer cancel()
	out := make(map[string]error, len(a.opts.Reconcilers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range a.opts.Reconcilers {
		wg.Go(func() {
			err := r.Health(hctx)
			mu.Lock()
			out[r.Name()] = err
			mu.Unlock()
		})
	}
	wg.Wait()
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

func (a *Agent) jittered() time.Duration {
	// ±20% so a fleet of DPUs rebooted together does not hit SPDK/OVSDB in step.
	f := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(a.opts.Interval) * f)
}

// Desired returns a copy of the current desired state.
func (a *Agent) Desired() *nodestate.Desired {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.desired.Clone()
}

// snapshot is the desired state and the record of its admission, read
// together so a reconcile logs the ids of the request behind the
// generation it applies.
func (a *Agent) snapshot() (*nodestate.Desired, *state.Admission) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var adm *state.Admission
	if a.admission != nil {
		c := *a.admission
		adm = &c
	}
	return a.desired.Clone(), adm
}

// View is what get_state and apply_state return.
type View struct {
	Desired  *nodestate.Desired `json:"desired"`
	Observed nodestate.Observed `json:"observed"`
	// Generation is the desired generation the agent holds (admitted).
	Generation int64 `json:"generation"`
	// Admission is what admitted Generation: method, request ids, time
	// (RPC API 1.1; absent when unknown).
	Admission *state.Admission `json:"admission,omitempty"`
}

// State returns the desired and observed state. Only storage's Observe
// touches a backend (one bdev_get_bdevs for the volumes' sizes, bounded).
func (a *Agent) State(ctx context.Context) View {
	d, adm := a.snapshot()
	if c := d.ConfigDrive; c != nil && c.URL != "" {
		// The URL's path or query is the secret that lets anyone fetch the
		// tenant's config drive: get_state (Ironic's agent_state passthru,
		// the agent's status CLI) shows where it comes from, not the secret.
		c.URL = nodestate.RedactURL(c.URL)
	}
	v := View{Desired: d, Generation: d.Generation, Admission: adm, Observed: nodestate.Observed{Volumes: []nodestate.VolumeStatus{}, VIFs: []nodestate.VIFStatus{},
		Components: map[string]nodestate.ComponentObserved{}}}
	for i, l := range a.loops {
		l.r.Observe(ctx, &v.Observed)
		st := l.status()
		c := nodestate.ComponentObserved{Generation: st.gen}
		if st.err != nil {
			c.LastError = st.err.Error()
		}
		v.Observed.Components[l.r.Name()] = c
		if i == 0 || st.gen < v.Observed.Generation {
			v.Observed.Generation = st.gen
		}
	}
	v.Observed.Quiesce = a.quiesceStatus()
	return v
}

// ApplyState replaces the desired state: it validates and persists next,
// asks every component loop to reconcile, and returns with the admitted
// generation: at once when wait is 0 (the observed part may not have
// converged yet; callers poll get_state until observed.generation reaches
// it), else once every loop reconciled it or wait (at most ItemWait)
// passed, whichever is first (RPC API 1.1: one call instead of polls).
func (a *Agent) ApplyState(ctx context.Context, next *nodestate.Desired, wait time.Duration) (View, error) {
	if err := a.admitState(ctx, next); err != nil {
		return View{}, err
	}
	tickets := make([]uint64, len(a.loops))
	for i, l := range a.loops {
		tickets[i] = l.request()
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, min(wait, a.opts.ItemWait))
		for i, l := range a.loops {
			if !l.wait(wctx, tickets[i]) {
				break // still converging: the caller sees it and may poll
			}
		}
		cancel()
	}
	return a.State(ctx), nil
}

func (a *Agent) admitState(ctx context.Context, next *nodestate.Desired) error {
	a.admitMu.Lock()
	defer a.admitMu.Unlock()
	if next.Generation < 1 {
		return fmt.Errorf("%w: generation must be 1 or more (0 means no desired state)", errdefs.ErrInvalidArgument)
	}
	cur := a.Desired()
	if next.Generation < cur.Generation {
		return fmt.Errorf("%w: generation %d is older than the agent's generation %d", errdefs.ErrConflict, next.Generation, cur.Generation)
	}
	if next.Generation == cur.Generation {
		// A retry of the same generation is fine; other content under a used
		// generation number means two writers disagree.
		cand := next.Clone()
		cand.Normalize()
		if err := nodestate.AssignFunctions(cur, cand, a.opts.SFBase); err != nil || !sameContent(cur, cand) {
			return fmt.Errorf("%w: generation %d was already applied with other content; send a newer generation", errdefs.ErrConflict, next.Generation)
		}
		return nil
	}
	return a.admitLocked(ctx, cur, next)
}

// Component names of the reconcilers, as single-item edits report them.
const (
	ComponentStorage = "storage"
	ComponentNetwork = "network"
)

// componentError is one reconciler's failure.
type componentError struct {
	name string
	err  error
}

func (e *componentError) Error() string { return e.name + ": " + e.err.Error() }
func (e *componentError) Unwrap() error { return e.err }

// edit applies fn to a copy of the desired state as a new generation, then
// waits (at most ItemWait) for component's own loop to reconcile it and
// reports that loop's failure only: a plug_vif never waits for SPDK, and
// does not fail because SPDK is down (that stays in the status and is
// retried). expected, when set, is the generation the caller believes the
// agent holds (the conductor mints generations): another one is Conflict,
// and the edit becomes generation expected+1 even when nothing changed, so
// both sides keep counting in step.
func (a *Agent) edit(ctx context.Context, component string, expected *int64, fn func(d *nodestate.Desired) error) error {
	changed, err := a.admitEdit(ctx, expected, fn)
	if err != nil {
		return err
	}
	// Only this component's loop is waited for. Every loop learns of a new
	// generation (observed.generation is their minimum); an unchanged
	// repeat still re-checks this component (the DPU may have drifted).
	wait := a.loopsOf(component)
	ask := wait
	if changed {
		ask = a.loops
	}
	tickets := make(map[*loop]uint64, len(ask))
	for _, l := range ask { // once each: a second request could rerun a loop
		tickets[l] = l.request()
	}
	wctx, cancel := context.WithTimeout(ctx, a.opts.ItemWait)
	defer cancel()
	var errs []error
	for _, l := range wait {
		if !l.wait(wctx, tickets[l]) {
			return nil // still converging: the caller sees "pending" and may poll
		}
		if st := l.status(); st.err != nil {
			errs = append(errs, &componentError{name: l.r.Name(), err: st.err})
		}
	}
	return errors.Join(errs...)
}

// loopsOf is component's loop, or every loop when no reconciler has its name.
func (a *Agent) loopsOf(component string) []*loop {
	if l := a.byName[component]; l != nil {
		return []*loop{l}
	}
	return a.loops
}

// admitEdit admits fn's change under the admission lock; it reports whether
// a new generation was admitted.
func (a *Agent) admitEdit(ctx context.Context, expected *int64, fn func(d *nodestate.Desired) error) (bool, error) {
	a.admitMu.Lock()
	defer a.admitMu.Unlock()
	cur := a.Desired()
	if expected != nil && *expected != cur.Generation {
		return false, fmt.Errorf("%w: expected generation %d but the agent holds %d; push the whole state (apply_state)",
			errdefs.ErrConflict, *expected, cur.Generation)
	}
	next := cur.Clone()
	if err := fn(next); err != nil {
		return false, err
	}
	next.Normalize() // stored form: a repeat in other case stays idempotent
	if expected == nil && sameContent(cur, next) {
		return false, nil // idempotent repeat: nothing to persist
	}
	next.Generation = cur.Generation + 1
	return true, a.admitLocked(ctx, cur, next)
}

// admitLocked validates next (generic, then per reconciler), allocates host
// functions, and persists it. Caller holds admitMu.
func (a *Agent) admitLocked(ctx context.Context, cur, next *nodestate.Desired) error {
	if next.NodeUUID != "" && !strings.EqualFold(next.NodeUUID, a.opts.NodeUUID) {
		return fmt.Errorf("%w: state is for node %s but this agent serves node %s", errdefs.ErrInvalidArgument, next.NodeUUID, a.opts.NodeUUID)
	}
	next.NodeUUID = a.opts.NodeUUID
	if next.Volumes == nil {
		next.Volumes = []nodestate.Volume{}
	}
	if next.VIFs == nil {
		next.VIFs = []nodestate.VIF{}
	}
	if err := next.CheckLimits(a.opts.Limits); err != nil { // before any per-item work
		return err
	}
	next.Normalize()
	// Shape only: each volume's Cinder connection info is parsed once, by
	// the storage reconciler's Validate below, which keeps the result for
	// its reconciles.
	if err := next.Validate(); err != nil {
		return err
	}
	if err := nodestate.AssignFunctions(cur, next, a.opts.SFBase); err != nil {
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
	c := callerOf(ctx)
	adm := &state.Admission{Generation: next.Generation, Method: c.Method, RequestID: c.RequestID,
		GlobalRequestID: c.GlobalRequestID, Time: time.Now().UTC()}
	if err := a.opts.Store.Save(next, adm); err != nil {
		return fmt.Errorf("%w: persist desired state: %v", errdefs.ErrUnavailable, err)
	}
	a.mu.Lock()
	a.desired, a.admission = next, adm
	a.mu.Unlock()
	logctx.Logger(ctx, a.log).Info("desired state admitted", zap.Int64("generation", next.Generation), zap.String("method", c.Method),
		zap.Int("volumes", len(next.Volumes)), zap.Int("vifs", len(next.VIFs)))
	return nil
}

func sameContent(a, b *nodestate.Desired) bool {
	x, y := a.Clone(), b.Clone()
	x.Generation, y.Generation = 0, 0
	x.NodeUUID, y.NodeUUID = "", ""
	// The config drive is its sha256: a retry carrying the data again, or
	// another URL to the same image, is the same state.
	for _, d := range []*nodestate.Desired{x, y} {
		if d.ConfigDrive != nil {
			d.ConfigDrive.Data, d.ConfigDrive.URL, d.ConfigDrive.Size = "", "", 0
		}
	}
	return equalJSON(x, y)
}
