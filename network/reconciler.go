// Package network plugs the node's VIFs (Neutron ports) into the DPU's OVN
// integration bridge: the DPU driver maps a host function to its representor
// (creating SFs), one OVSDB transaction per plug writes Port+Interface with
// iface-id, and ovn-controller's ovn-installed mark says the port is bound.
package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/ovs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
)

// Options configures a Reconciler.
type Options struct {
	Config   config.OVSOpts
	NodeUUID string
	Driver   drivers.NetworkDriver
	// Trigger asks the agent for a reconcile (agent.RequestReconcile); called
	// after every OVSDB (re)connect. Must not block.
	Trigger func()
	Logger  *zap.Logger
}

// Reconciler implements agent.Reconciler for VIFs.
type Reconciler struct {
	cfg    config.OVSOpts
	node   string
	drv    drivers.NetworkDriver
	log    *zap.Logger
	ovs    *ovs.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	vifs      []vifStatus // from the last Reconcile, in desired order
	latencies []time.Duration
}

type vifStatus struct {
	portID    string
	fn        *state.Function
	rep       string
	lastErr   string
	installed bool
}

// New returns promptly even when OVSDB is down: a goroutine owned by the
// Reconciler keeps (re)connecting until ctx is done or Close is called, and
// Health reports errdefs.ErrUnavailable meanwhile.
func New(ctx context.Context, o Options) (*Reconciler, error) {
	if o.Driver == nil {
		return nil, fmt.Errorf("%w: network: no DPU network driver", errdefs.ErrInvalidArgument)
	}
	if !state.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: network: node uuid %q is not a UUID", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	if o.Config.IntegrationBridge == "" || o.Config.OVSDBConnection == "" {
		return nil, fmt.Errorf("%w: network: [ovs] integration_bridge and ovsdb_connection must be set", errdefs.ErrInvalidArgument)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Trigger == nil {
		o.Trigger = func() {}
	}
	log := o.Logger.Named("network")
	ctx, cancel := context.WithCancel(ctx)
	r := &Reconciler{
		cfg: o.Config, node: o.NodeUUID, drv: o.Driver, log: log, cancel: cancel, done: make(chan struct{}),
		ovs: ovs.NewClient(o.Config.OVSDBConnection, log, o.Trigger),
	}
	go func() {
		defer close(r.done)
		r.ovs.Run(ctx)
	}()
	return r, nil
}

// Close stops the OVSDB connection goroutine and waits for it.
func (r *Reconciler) Close() {
	r.cancel()
	<-r.done
}

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
	if snap.Bridge(r.cfg.IntegrationBridge) == nil {
		return fmt.Errorf("%w: integration bridge %s does not exist", errdefs.ErrUnavailable, r.cfg.IntegrationBridge)
	}
	return nil
}

// Validate implements agent.Reconciler: every VIF is well-formed and names a
// function the DPU driver accepts (e.g. a PF the card has). No side effects.
func (r *Reconciler) Validate(_ context.Context, d *state.Desired) error {
	if d == nil {
		return nil
	}
	for _, v := range d.VIFs {
		if err := state.ValidateVIF(v); err != nil {
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

// functionKey is how a host function is recorded in external_ids.
func functionKey(f state.Function) string { return representor.Name(f) }

func parseFunctionKey(s string) (state.Function, bool) {
	p, ok := representor.ParsePortName(s)
	if !ok || p.Controller != -1 {
		return state.Function{}, false
	}
	f := state.Function{PF: p.PF}
	switch p.Kind {
	case representor.VF:
		f.VF = state.IntPtr(p.Num)
	case representor.SF:
		f.SF = state.IntPtr(p.Num)
	case representor.HostPF:
	default:
		return state.Function{}, false
	}
	return f, true
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
// for the plugged ones to be bound. Unchanged VIFs cost no write at all.
func (r *Reconciler) Reconcile(ctx context.Context, d *state.Desired) error {
	if d == nil {
		d = &state.Desired{}
	}
	if err := r.Validate(ctx, d); err != nil {
		return err
	}
	for _, v := range d.VIFs {
		if v.Function == nil {
			return fmt.Errorf("%w: vif %s has no host function (the agent assigns one before reconciling)", errdefs.ErrInvalidArgument, v.PortID)
		}
	}
	statuses := make([]vifStatus, len(d.VIFs))
	for i, v := range d.VIFs {
		f := *v.Function
		statuses[i] = vifStatus{portID: v.PortID, fn: &f}
	}
	snap, err := r.ovs.Snapshot(ctx)
	if err != nil {
		for i := range statuses {
			statuses[i].lastErr = err.Error()
		}
		r.store(statuses, nil)
		return err
	}
	bridge := r.cfg.IntegrationBridge
	var errs []error
	fail := func(i int, err error) {
		statuses[i].lastErr = err.Error()
		errs = append(errs, fmt.Errorf("vif %s: %w", d.VIFs[i].PortID, err))
	}

	// 1. Resolve representors without side effects. An SF that does not
	// exist yet resolves in step 3 (Prepare).
	reps := make([]string, len(d.VIFs))
	wantFns := map[string]bool{}    // function keys still desired
	unresolved := map[string]bool{} // ... whose representor is not known yet
	wantReps := map[string]bool{}
	for i, v := range d.VIFs {
		k := functionKey(*v.Function)
		wantFns[k] = true
		rep, err := r.drv.Representor(ctx, *v.Function)
		switch {
		case err == nil:
			reps[i] = rep
			wantReps[rep] = true
		case errors.Is(err, errdefs.ErrNotFound):
			unresolved[k] = true
		default:
			// Not knowing the representor is no reason to unplug what
			// this function has now (step 2): that would drop the host's NIC.
			unresolved[k] = true
			fail(i, err)
		}
	}

	// 2. Unplug what this node owns and no longer wants. A port whose
	// function is desired but not resolved yet is left to step 3, which
	// replaces it if the representor turns out different.
	for name, f := range snap.Owned(bridge, r.node) {
		if wantReps[name] || unresolved[f.ExternalIDs[ovs.KeyFunction]] {
			continue
		}
		if err := r.unplug(ctx, snap, name, f, wantFns); err != nil {
			errs = append(errs, fmt.Errorf("unplug %s: %w", name, err))
		}
	}

	// 3. Plug what is missing or differs.
	type pending struct {
		idx   int
		iface string
		sent  time.Time
	}
	var waits []pending
	var jobs []plugJob
	for i, v := range d.VIFs {
		if statuses[i].lastErr != "" {
			continue
		}
		prepared := false
		if reps[i] == "" {
			rep, err := r.drv.Prepare(ctx, *v.Function, v.MAC)
			if err != nil {
				fail(i, err)
				continue
			}
			reps[i], prepared = rep, true
		}
		statuses[i].rep = reps[i]
		spec := ovs.IfaceSpec{Name: reps[i], IfaceID: v.PortID, MAC: v.MAC, NodeUUID: r.node,
			Function: functionKey(*v.Function), MTU: v.MTU}
		if snap.Matches(bridge, spec) {
			statuses[i].installed = snap.Iface(spec.Name).Installed()
			continue
		}
		if snap.MTUOnly(bridge, spec) {
			if _, err := r.ovs.Transact(ctx, snap.MTUOps(spec)); err != nil {
				fail(i, err)
				continue
			}
			r.log.Info("changed vif mtu in place", zap.String("port_id", v.PortID), zap.String("representor", spec.Name), zap.Int("mtu", spec.MTU))
			statuses[i].installed = snap.Iface(spec.Name).Installed()
			continue
		}
		// Plan first: a conflict (representor on another bridge) must not
		// touch the function either.
		ops, err := snap.PlugOps(bridge, spec)
		if err != nil {
			if prepared {
				// The SF was made for this plug only; do not leave it behind.
				if rerr := r.drv.Release(ctx, *v.Function); rerr != nil {
					err = fmt.Errorf("%w (and releasing the new function: %v)", err, rerr)
				}
			}
			fail(i, err)
			continue
		}
		if !prepared {
			// Re-apply the function's settings (an SF's MAC may have changed).
			if _, err := r.drv.Prepare(ctx, *v.Function, v.MAC); err != nil {
				fail(i, err)
				continue
			}
		}
		jobs = append(jobs, plugJob{idx: i, spec: spec, ops: ops, prepared: prepared})
	}
	// All plans come from one snapshot, so the transactions are independent
	// (a row two of them delete is simply gone for the second): pipeline
	// them, which lets ovsdb-server, vswitchd and ovn-controller batch work.
	r.transactAll(ctx, jobs)
	for _, j := range jobs {
		if j.err != nil {
			if j.prepared {
				if rerr := r.drv.Release(ctx, *d.VIFs[j.idx].Function); rerr != nil {
					j.err = fmt.Errorf("%w (and releasing the new function: %v)", j.err, rerr)
				}
			}
			fail(j.idx, j.err)
			continue
		}
		for _, name := range snap.Replaced(j.spec) {
			snap.Forget(name)
		}
		r.log.Info("plugged vif", zap.String("port_id", d.VIFs[j.idx].PortID), zap.String("representor", j.spec.Name),
			zap.String("function", j.spec.Function), zap.Duration("txn", j.took))
		waits = append(waits, pending{idx: j.idx, iface: j.iface, sent: j.sent})
	}

	// 4. Wait (bounded) for ovn-controller to bind what was just plugged.
	var lat []time.Duration
	if len(waits) > 0 {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.BindTimeout)
		uuids := make([]string, len(waits))
		for i, w := range waits {
			uuids[i] = w.iface
		}
		seen := r.ovs.WaitInstalled(wctx, uuids)
		cancel()
		for _, w := range waits {
			if t, ok := seen[w.iface]; ok {
				statuses[w.idx].installed = true
				lat = append(lat, t.Sub(w.sent))
			}
		}
	}
	r.store(statuses, lat)
	return errors.Join(errs...)
}

func (r *Reconciler) unplug(ctx context.Context, snap *ovs.Snapshot, name string, f *ovs.Iface, wantFns map[string]bool) error {
	if _, err := r.ovs.Transact(ctx, snap.UnplugOps(name)); err != nil {
		return err
	}
	snap.Forget(name)
	r.log.Info("unplugged vif", zap.String("port_id", f.ExternalIDs[ovs.KeyIfaceID]), zap.String("representor", name))
	key := f.ExternalIDs[ovs.KeyFunction]
	fn, ok := parseFunctionKey(key)
	if !ok || wantFns[key] {
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
func (r *Reconciler) Observe(ctx context.Context, obs *state.Observed) {
	r.mu.Lock()
	vifs := slices.Clone(r.vifs)
	r.mu.Unlock()
	snap, snapErr := r.ovs.Snapshot(ctx)
	obs.VIFs = obs.VIFs[:0]
	for _, v := range vifs {
		st := state.VIFStatus{PortID: v.portID, Representor: v.rep, Function: v.fn, LastError: v.lastErr, Bound: v.installed}
		if snapErr == nil && v.rep != "" {
			if f := snap.Iface(v.rep); f != nil && strings.EqualFold(f.ExternalIDs[ovs.KeyIfaceID], v.portID) {
				st.OFPort, st.Bound = f.OFPort, f.Installed()
				if f.Error != "" && st.LastError == "" {
					st.LastError = f.Error
				}
			} else {
				st.Bound = false
				if st.LastError == "" {
					st.LastError = "not on " + r.cfg.IntegrationBridge
				}
			}
		}
		switch {
		case v.lastErr != "":
			st.State = state.StateError
		case st.Bound:
			st.State = state.StatePlugged
		default:
			st.State = state.StatePending
		}
		obs.VIFs = append(obs.VIFs, st)
	}
}
