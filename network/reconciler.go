// Package network plugs the node's VIFs (Neutron ports) into the DPU's OVN
// integration bridge: the DPU driver maps a host function to its representor
// (creating SFs), one OVSDB transaction per plug writes Port+Interface with
// iface-id, and ovn-controller's ovn-installed mark says the port is bound.
package network

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/backoff"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/tlsconf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/ovs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// MACReader is a DPU network driver that can read the MAC a host function
// has now (drivers/sim, drivers/bluefield): the observed VIF state reports
// it, and a function whose MAC drifted from its VIF's gets it again.
// errdefs.ErrNotSupported: the driver cannot tell for this function.
type MACReader interface {
	FunctionMAC(ctx context.Context, f nodestate.Function) (string, error)
}

// Options configures a Reconciler.
type Options struct {
	// OVSDBConnection is the DPU's OVSDB server: unix:PATH, tcp:HOST:PORT
	// or ssl:HOST:PORT; an ssl: one needs the three files below (PEM).
	OVSDBConnection                        string
	SSLKeyFile, SSLCertFile, SSLCACertFile string
	// IntegrationBridge is OVN's integration bridge (br-int).
	IntegrationBridge string
	// BindTimeout bounds the wait for ovn-installed before a VIF is
	// reported pending.
	BindTimeout time.Duration
	NodeUUID    string
	Driver      drivers.NetworkDriver
	// Trigger asks the agent for a reconcile (agent.RequestReconcile); called
	// after every OVSDB (re)connect. Must not block.
	Trigger func()
	// RetryBase, when > 0, makes a VIF that failed wait before its next
	// attempt: RetryBase doubling per consecutive failure up to RetryMax,
	// with jitter. 0 retries on every Reconcile.
	RetryBase, RetryMax time.Duration
	Logger              *zap.Logger
}

// Reconciler implements agent.Reconciler for VIFs.
type Reconciler struct {
	bridge      string
	bindTimeout time.Duration
	node        string
	drv         drivers.NetworkDriver
	log         *zap.Logger
	ovs         *ovs.Client

	retryBase, retryMax time.Duration

	mu        sync.Mutex
	vifs      []vifStatus // from the last Reconcile, in desired order
	latencies []time.Duration
	retries   map[string]vifRetry // by lower-case port id
}

// vifRetry is a failed VIF's backoff.
type vifRetry struct {
	spec     string // retrySpec of the VIF that failed
	failures int    // consecutive
	at       time.Time
	lastErr  error
}

type vifStatus struct {
	portID    string
	fn        *nodestate.Function
	rep       string
	lastErr   string
	installed bool
}

// New checks the options and starts nothing: the owner runs the OVSDB
// connection with Run. Until it is connected Health and Reconcile report
// errdefs.ErrUnavailable.
func New(o Options) (*Reconciler, error) {
	if o.Driver == nil {
		return nil, fmt.Errorf("%w: network: no DPU network driver", errdefs.ErrInvalidArgument)
	}
	if !nodestate.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: network: node uuid %q is not a UUID", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	if o.IntegrationBridge == "" || o.OVSDBConnection == "" {
		return nil, fmt.Errorf("%w: network: [ovs] integration_bridge and ovsdb_connection must be set", errdefs.ErrInvalidArgument)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Trigger == nil {
		o.Trigger = func() {}
	}
	tlsConfig := func() (*tls.Config, error) {
		return tlsconf.OVSDB(o.OVSDBConnection, o.SSLKeyFile, o.SSLCertFile, o.SSLCACertFile)
	}
	// unreadable or missing files fail here, not at every reconnect
	if _, err := tlsConfig(); err != nil {
		return nil, fmt.Errorf("%w: network: %w", errdefs.ErrInvalidArgument, err)
	}
	log := o.Logger.Named("network")
	r := &Reconciler{
		bridge: o.IntegrationBridge, bindTimeout: o.BindTimeout, node: o.NodeUUID, drv: o.Driver, log: log,
		retryBase: o.RetryBase, retryMax: max(o.RetryMax, o.RetryBase),
		ovs: ovs.NewClient(o.OVSDBConnection, tlsConfig, log, o.Trigger),
	}
	return r, nil
}

// Run keeps the OVSDB connection up ((re)connecting with backoff, firing
// Options.Trigger on every connect) until ctx is done, and returns when it
// is closed.
func (r *Reconciler) Run(ctx context.Context) { r.ovs.Run(ctx) }

// Name implements agent.Reconciler.
func (r *Reconciler) Name() string { return "network" }

// Transactions counts OVSDB transactions sent (tests: an unchanged state sends none).
func (r *Reconciler) Transactions() uint64 { return r.ovs.Transactions() }

// PlugLatencies returns, for the VIFs the last Reconcile wrote and saw bound,
// the time from sending the plug transaction to ovn-installed.
func (r *Reconciler) PlugLatencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.latencies)
}

// Health implements agent.Reconciler: OVSDB reachable and the integration
// bridge present.
func (r *Reconciler) Health(ctx context.Context) error {
	snap, err := r.ovs.Snapshot(ctx)
	if err != nil {
		return err
	}
	if snap.Bridge(r.bridge) == nil {
		return fmt.Errorf("%w: integration bridge %s does not exist", errdefs.ErrUnavailable, r.bridge)
	}
	return nil
}

// Validate implements agent.Reconciler: every VIF is well-formed and names a
// function the DPU driver accepts (e.g. a PF the card has). No side effects.
func (r *Reconciler) Validate(_ context.Context, d *nodestate.Desired) error {
	if d == nil {
		return nil
	}
	for _, v := range d.VIFs {
		if err := nodestate.ValidateVIF(v); err != nil {
			return err
		}
		if v.Function != nil {
			if err := r.drv.ValidateFunction(*v.Function); err != nil {
				return fmt.Errorf("vif %s: %w", v.PortID, err)
			}
		}
	}
	return nil
}

// maxInflight bounds concurrent plug transactions.
const maxInflight = 8

type plugJob struct {
	idx   int
	spec  ovs.IfaceSpec
	ops   []ovsdb.Operation
	sent  time.Time
	took  time.Duration
	iface string // UUID of the inserted Interface
	err   error
	// prepared: the SF was created for this plug, so a failed transaction
	// must release it (no row would name it for a later unplug).
	prepared bool
}

func (r *Reconciler) transactAll(ctx context.Context, jobs []plugJob) {
	sem := make(chan struct{}, maxInflight)
	var wg sync.WaitGroup
	for k := range jobs {
		j := &jobs[k]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			j.sent = time.Now()
			res, err := r.ovs.Transact(ctx, j.ops)
			j.took = time.Since(j.sent)
			if err != nil {
				j.err = err
				return
			}
			j.iface = res[ovs.PlugIfaceOp(j.ops)].UUID.GoUUID
		}()
	}
	wg.Wait()
}

// Reconcile implements agent.Reconciler. It reads OVSDB through the client's
// cache, removes this node's ports that are no longer desired, plugs missing
// or changed VIFs (one transaction each), and waits up to [ovs] bind_timeout
// for the plugged ones to be bound. Unchanged VIFs cost no write at all; a
// VIF that failed is retried after its own backoff (sooner when its spec
// changes), not on every reconcile.
func (r *Reconciler) Reconcile(ctx context.Context, d *nodestate.Desired) error {
	p, err := r.plan(ctx, d)
	if err != nil {
		return err
	}
	r.removals(ctx, p)
	waits := r.plugs(ctx, p)
	lat := r.awaitBound(ctx, p, waits)
	r.record(p, lat)
	return errors.Join(p.errs...)
}

// plan is one reconcile's view: the desired VIFs, the OVSDB snapshot, and
// what each VIF resolved to so far.
type plan struct {
	vifs     []nodestate.VIF
	snap     *ovs.Snapshot
	statuses []vifStatus
	causes   []error         // per VIF: why it failed (nil = it did not)
	reps     []string        // representor per VIF ("" = not known yet)
	deferred []bool          // in backoff after a failure: not tried now
	wantFns  map[string]bool // function keys still desired
	// unresolved: desired function keys whose representor is not known
	// yet (or whose VIF is deferred): their current port is left alone.
	unresolved map[string]bool
	wantReps   map[string]bool
	errs       []error
}

func (p *plan) fail(i int, err error) {
	p.statuses[i].lastErr, p.causes[i] = err.Error(), err
	p.errs = append(p.errs, fmt.Errorf("vif %s: %w", p.vifs[i].PortID, err))
}

// plan validates d, reads OVSDB and resolves representors, without side
// effects. An SF that does not exist yet resolves in plugs (Prepare).
func (r *Reconciler) plan(ctx context.Context, d *nodestate.Desired) (*plan, error) {
	if d == nil {
		d = &nodestate.Desired{}
	}
	if err := r.Validate(ctx, d); err != nil {
		return nil, err
	}
	for _, v := range d.VIFs {
		if v.Function == nil {
			return nil, fmt.Errorf("%w: vif %s has no host function (the agent assigns one before reconciling)", errdefs.ErrInvalidArgument, v.PortID)
		}
	}
	p := &plan{vifs: d.VIFs, statuses: make([]vifStatus, len(d.VIFs)), causes: make([]error, len(d.VIFs)), reps: make([]string, len(d.VIFs)),
		deferred: make([]bool, len(d.VIFs)), wantFns: map[string]bool{}, unresolved: map[string]bool{}, wantReps: map[string]bool{}}
	for i, v := range d.VIFs {
		f := *v.Function
		p.statuses[i] = vifStatus{portID: v.PortID, fn: &f}
	}
	snap, err := r.ovs.Snapshot(ctx)
	if err != nil {
		for i := range p.statuses {
			p.statuses[i].lastErr = err.Error()
		}
		r.store(p.statuses, nil)
		return nil, err
	}
	p.snap = snap
	now := time.Now()
	for i, v := range d.VIFs {
		k := v.Function.String()
		p.wantFns[k] = true
		if wait, last := r.retryWait(v, now); wait > 0 {
			// Failed recently with this very spec: leave it (and its port)
			// as it is until its backoff ends.
			p.deferred[i], p.unresolved[k] = true, true
			p.fail(i, fmt.Errorf("%w (retrying in %v)", last, wait.Round(time.Millisecond)))
			continue
		}
		rep, err := r.drv.Representor(ctx, *v.Function)
		switch {
		case err == nil:
			p.reps[i] = rep
			p.wantReps[rep] = true
		case errors.Is(err, errdefs.ErrNotFound):
			p.unresolved[k] = true
		default:
			// Not knowing the representor is no reason to unplug what
			// this function has now (removals): that would drop the host's NIC.
			p.unresolved[k] = true
			p.fail(i, err)
		}
	}
	return p, nil
}

// removals unplugs what this node owns and no longer wants. A port whose
// function is desired but not resolved yet is left to plugs, which replaces
// it if the representor turns out different.
func (r *Reconciler) removals(ctx context.Context, p *plan) {
	for name, f := range p.snap.Owned(r.bridge, r.node) {
		if p.wantReps[name] || p.unresolved[f.ExternalIDs[ovs.KeyFunction]] {
			continue
		}
		if err := r.unplug(ctx, p.snap, name, f, p.wantFns); err != nil {
			p.errs = append(p.errs, fmt.Errorf("unplug %s: %w", name, err))
		}
	}
}

// bindWait is a plugged VIF waiting for ovn-installed.
type bindWait struct {
	idx   int
	iface string
	sent  time.Time
}

// plugs plugs what is missing or differs and returns what to wait for.
func (r *Reconciler) plugs(ctx context.Context, p *plan) []bindWait {
	var jobs []plugJob
	for i := range p.vifs {
		if p.statuses[i].lastErr != "" {
			continue
		}
		if j, ok := r.planPlug(ctx, p, i); ok {
			jobs = append(jobs, j)
		}
	}
	// All plans come from one snapshot, so the transactions are independent
	// (a row two of them delete is simply gone for the second): pipeline
	// them, which lets ovsdb-server, vswitchd and ovn-controller batch work.
	r.transactAll(ctx, jobs)
	var waits []bindWait
	for _, j := range jobs {
		v := p.vifs[j.idx]
		if j.err != nil {
			if j.prepared {
				if rerr := r.drv.Release(ctx, *v.Function); rerr != nil {
					j.err = fmt.Errorf("%w (and releasing the new function: %v)", j.err, rerr)
				}
			}
			p.fail(j.idx, j.err)
			continue
		}
		for _, name := range p.snap.Replaced(j.spec) {
			p.snap.Forget(name)
		}
		logctx.Logger(ctx, r.log).Info("plugged vif", zap.String("port_id", v.PortID), zap.String("representor", j.spec.Name),
			zap.String("function", j.spec.Function), zap.Duration("txn", j.took))
		waits = append(waits, bindWait{idx: j.idx, iface: j.iface, sent: j.sent})
	}
	return waits
}

// planPlug prepares VIF i's function and plans its plug transaction; it
// reports false when nothing is to be sent (unchanged, MTU fixed in place,
// or failed).
func (r *Reconciler) planPlug(ctx context.Context, p *plan, i int) (plugJob, bool) {
	v, bridge := p.vifs[i], r.bridge
	prepared := false
	if p.reps[i] == "" {
		rep, err := r.drv.Prepare(ctx, *v.Function, v.MAC)
		if err != nil {
			p.fail(i, err)
			return plugJob{}, false
		}
		p.reps[i], prepared = rep, true
	}
	p.statuses[i].rep = p.reps[i]
	spec := ovs.IfaceSpec{Name: p.reps[i], IfaceID: v.PortID, MAC: v.MAC, NodeUUID: r.node,
		Function: v.Function.String(), MTU: v.MTU}
	if p.snap.Matches(bridge, spec) {
		if !prepared && !r.keepMAC(ctx, p, i) {
			return plugJob{}, false
		}
		p.statuses[i].installed = p.snap.Iface(spec.Name).Installed()
		return plugJob{}, false
	}
	if p.snap.MTUOnly(bridge, spec) {
		if !prepared && !r.keepMAC(ctx, p, i) {
			return plugJob{}, false
		}
		if _, err := r.ovs.Transact(ctx, p.snap.MTUOps(spec)); err != nil {
			p.fail(i, err)
			return plugJob{}, false
		}
		logctx.Logger(ctx, r.log).Info("changed vif mtu in place", zap.String("port_id", v.PortID), zap.String("representor", spec.Name), zap.Int("mtu", spec.MTU))
		p.statuses[i].installed = p.snap.Iface(spec.Name).Installed()
		return plugJob{}, false
	}
	// Plan first: a conflict (representor on another bridge) must not
	// touch the function either.
	ops, err := p.snap.PlugOps(bridge, spec)
	if err != nil {
		if prepared {
			// The SF was made for this plug only; do not leave it behind.
			if rerr := r.drv.Release(ctx, *v.Function); rerr != nil {
				err = fmt.Errorf("%w (and releasing the new function: %v)", err, rerr)
			}
		}
		p.fail(i, err)
		return plugJob{}, false
	}
	if !prepared {
		// Re-apply the function's settings (an SF's MAC may have changed).
		if _, err := r.drv.Prepare(ctx, *v.Function, v.MAC); err != nil {
			p.fail(i, err)
			return plugJob{}, false
		}
	}
	return plugJob{idx: i, spec: spec, ops: ops, prepared: prepared}, true
}

// keepMAC gives VIF i's function its MAC again when the driver reads
// another one (a restarted DPU, a reset VF) although the OVSDB row is
// unchanged; false when that failed (recorded on the VIF).
func (r *Reconciler) keepMAC(ctx context.Context, p *plan, i int) bool {
	v := p.vifs[i]
	mr, ok := r.drv.(MACReader)
	if !ok {
		return true
	}
	mac, err := mr.FunctionMAC(ctx, *v.Function)
	if err != nil || strings.EqualFold(mac, v.MAC) {
		return true // cannot tell (a host PF), or right
	}
	if _, err := r.drv.Prepare(ctx, *v.Function, v.MAC); err != nil {
		p.fail(i, err)
		return false
	}
	logctx.Logger(ctx, r.log).Info("gave the host function its vif's mac again", zap.String("port_id", v.PortID),
		zap.String("function", v.Function.String()), zap.String("had", mac), zap.String("mac", v.MAC))
	return true
}

// awaitBound waits (bounded) for ovn-controller to bind what was just
// plugged and returns the plug-to-bound latencies.
func (r *Reconciler) awaitBound(ctx context.Context, p *plan, waits []bindWait) []time.Duration {
	if len(waits) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, r.bindTimeout)
	defer cancel()
	uuids := make([]string, len(waits))
	for i, w := range waits {
		uuids[i] = w.iface
	}
	seen := r.ovs.WaitInstalled(wctx, uuids)
	var lat []time.Duration
	for _, w := range waits {
		if t, ok := seen[w.iface]; ok {
			p.statuses[w.idx].installed = true
			lat = append(lat, t.Sub(w.sent))
		}
	}
	return lat
}

// record stores the statuses for Observe and updates each VIF's retry state:
// a failure (not a deferral) pushes its next attempt out, a success clears it.
func (r *Reconciler) record(p *plan, lat []time.Duration) {
	r.store(p.statuses, lat)
	if r.retryBase <= 0 {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]vifRetry, len(p.vifs))
	for i, v := range p.vifs {
		id := strings.ToLower(v.PortID)
		switch {
		case p.deferred[i]:
			next[id] = r.retries[id]
		case p.causes[i] != nil:
			n := r.retries[id].failures + 1
			next[id] = vifRetry{spec: retrySpec(v), failures: n, lastErr: p.causes[i],
				at: now.Add(backoff.Delay(r.retryBase, r.retryMax, n, rand.Float64()))}
		}
	}
	r.retries = next
}

// NextRetry implements agent.RetryHinter: when the earliest failed VIF is
// due again (zero when none waits).
func (r *Reconciler) NextRetry() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, rt := range r.retries {
		if next.IsZero() || rt.at.Before(next) {
			next = rt.at
		}
	}
	return next
}

// retrySpec is what a retry is keyed on: a changed VIF is tried at once.
func retrySpec(v nodestate.VIF) string {
	return fmt.Sprintf("%s/%s/%d", v.Function.String(), strings.ToLower(v.MAC), v.MTU)
}

// retryWait is how long v must still wait after its last failure (0 = try
// now), with that failure's message.
func (r *Reconciler) retryWait(v nodestate.VIF, now time.Time) (time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.retries[strings.ToLower(v.PortID)]
	if !ok || rt.spec != retrySpec(v) || !now.Before(rt.at) {
		return 0, nil
	}
	return rt.at.Sub(now), rt.lastErr
}

func (r *Reconciler) unplug(ctx context.Context, snap *ovs.Snapshot, name string, f *ovs.Iface, wantFns map[string]bool) error {
	if _, err := r.ovs.Transact(ctx, snap.UnplugOps(name)); err != nil {
		return err
	}
	snap.Forget(name)
	logctx.Logger(ctx, r.log).Info("unplugged vif", zap.String("port_id", f.ExternalIDs[ovs.KeyIfaceID]), zap.String("representor", name))
	key := f.ExternalIDs[ovs.KeyFunction]
	fn, err := nodestate.ParseFunction(key)
	if err != nil || wantFns[key] {
		// Unknown key, or the function now backs another desired VIF.
		return nil
	}
	return r.drv.Release(ctx, fn)
}

func (r *Reconciler) store(s []vifStatus, lat []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vifs = s
	r.latencies = lat
}

// Observe implements agent.Reconciler: per VIF of the last Reconcile, live
// values (ofport, bound) from the OVSDB cache when connected.
func (r *Reconciler) Observe(ctx context.Context, obs *nodestate.Observed) {
	r.mu.Lock()
	vifs := slices.Clone(r.vifs)
	r.mu.Unlock()
	snap, snapErr := r.ovs.Snapshot(ctx)
	mr, _ := r.drv.(MACReader)
	obs.VIFs = obs.VIFs[:0]
	for _, v := range vifs {
		st := nodestate.VIFStatus{PortID: v.portID, Representor: v.rep, Function: v.fn, LastError: v.lastErr, Bound: v.installed}
		if mr != nil && v.fn != nil && v.rep != "" {
			if mac, err := mr.FunctionMAC(ctx, *v.fn); err == nil {
				st.MAC = mac
			}
		}
		if snapErr == nil && v.rep != "" {
			if f := snap.Iface(v.rep); f != nil && strings.EqualFold(f.ExternalIDs[ovs.KeyIfaceID], v.portID) {
				st.OFPort, st.Bound = f.OFPort, f.Installed()
				if f.Error != "" && st.LastError == "" {
					st.LastError = f.Error
				}
			} else {
				st.Bound = false
				if st.LastError == "" {
					st.LastError = "not on " + r.bridge
				}
			}
		}
		switch {
		case v.lastErr != "":
			st.State = nodestate.StateError
		case st.Bound:
			st.State = nodestate.StatePlugged
		default:
			st.State = nodestate.StatePending
		}
		obs.VIFs = append(obs.VIFs, st)
	}
}
