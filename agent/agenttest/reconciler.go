// Package agenttest has a recording Reconciler for tests of the agent core
// and of the RPC edge.
package agenttest

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Reconciler records every call and reports the desired items as attached
// and plugged. Set ReconcileErr/ValidateErr/HealthErr to inject failures.
type Reconciler struct {
	NameValue string

	mu           sync.Mutex
	ReconcileErr error
	ValidateErr  error
	HealthErr    error
	Reconciles   []*nodestate.Desired
	fields       []map[string]string
	Validates    int
	last         *nodestate.Desired
	// Block, when set, is waited on inside Reconcile (to test slow calls).
	Block   chan struct{}
	started int
	// Retry, when set, is what NextRetry reports (agent.RetryHinter).
	Retry time.Time
}

// NextRetry implements agent.RetryHinter.
func (r *Reconciler) NextRetry() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Retry
}

// SetRetry sets what NextRetry reports.
func (r *Reconciler) SetRetry(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Retry = at
}

// Name implements agent.Reconciler.
func (r *Reconciler) Name() string {
	if r.NameValue == "" {
		return "test"
	}
	return r.NameValue
}

// Validate implements agent.Reconciler.
func (r *Reconciler) Validate(ctx context.Context, d *nodestate.Desired) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Validates++
	return r.ValidateErr
}

// Reconcile implements agent.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, d *nodestate.Desired) error {
	r.mu.Lock()
	block := r.Block
	r.started++
	r.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Reconciles = append(r.Reconciles, d.Clone())
	r.fields = append(r.fields, fieldMap(logctx.Fields(ctx)))
	r.last = d.Clone()
	return r.ReconcileErr
}

func fieldMap(fields []zap.Field) map[string]string {
	m := map[string]string{}
	for _, f := range fields {
		m[f.Key] = f.String
	}
	return m
}

// LogFields returns, per completed reconcile, the string log fields its
// context carried (internal/logctx: the ids of the admitting request).
func (r *Reconciler) LogFields() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fields)
}

// Observe implements agent.Reconciler.
func (r *Reconciler) Observe(ctx context.Context, obs *nodestate.Observed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		return
	}
	// A component-named fake reports its own items only, like the real ones.
	if r.NameValue != "network" {
		r.observeVolumes(obs)
	}
	if r.NameValue != "storage" {
		for _, v := range r.last.VIFs {
			obs.VIFs = append(obs.VIFs, nodestate.VIFStatus{PortID: v.PortID, State: nodestate.StatePlugged, Function: v.Function, Bound: true})
		}
	}
}

func (r *Reconciler) observeVolumes(obs *nodestate.Observed) {
	for _, v := range r.last.Volumes {
		nsid := 2
		if v.BootIndex != nil && *v.BootIndex == 0 {
			nsid = 1
		}
		obs.Volumes = append(obs.Volumes, nodestate.VolumeStatus{VolumeID: v.VolumeID, State: nodestate.StateAttached, NSID: nsid})
	}
}

// Health implements agent.Reconciler.
func (r *Reconciler) Health(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.HealthErr
}

// Calls returns how many reconciles ran.
func (r *Reconciler) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.Reconciles)
}

// Started returns how many reconciles began (including blocked ones).
func (r *Reconciler) Started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

// SetBlock installs (or, with nil, removes) the channel Reconcile waits on.
func (r *Reconciler) SetBlock(ch chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Block = ch
}

// Set changes the injected errors under the lock.
func (r *Reconciler) Set(reconcileErr, validateErr, healthErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ReconcileErr, r.ValidateErr, r.HealthErr = reconcileErr, validateErr, healthErr
}

// Seen returns the desired states Reconcile was called with, in order.
func (r *Reconciler) Seen() []*nodestate.Desired {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nodestate.Desired(nil), r.Reconciles...)
}
