package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// HostQuiescer pauses and resumes the host's emulated NVMe controllers for a
// block-consistent snapshot (storage.Hold), bounded by its max hold.
type HostQuiescer interface {
	// Quiesce pauses every controller for at most hold (0: the max hold).
	Quiesce(ctx context.Context, hold time.Duration) (nodestate.QuiesceStatus, error)
	// Unquiesce resumes them; nothing paused is success.
	Unquiesce(ctx context.Context) (nodestate.QuiesceStatus, error)
	Status() nodestate.QuiesceStatus
	// MaxHold is the longest pause allowed.
	MaxHold() time.Duration
	// Run resumes what a previous agent left paused, every pause at its
	// deadline, and what is paused when ctx ends; it returns after that.
	Run(ctx context.Context)
}

// quiescer is Options.Quiescer, or an error saying the agent has none.
func (a *Agent) quiescer(method string) (HostQuiescer, error) {
	if a.opts.Quiescer == nil {
		return nil, fmt.Errorf("%w: %s(): this agent has no way to pause the host's controllers (driver %s)",
			errdefs.ErrNotSupported, method, a.opts.DriverName)
	}
	return a.opts.Quiescer, nil
}

// rpcQuiesce is quiesce(hold_seconds=None) (API 1.3): pause the host's
// controllers for at most hold_seconds (default and maximum: the agent's
// [storage] quiesce_max_hold), after which the agent resumes them itself.
func (a *Agent) rpcQuiesce(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var hold *float64
	if err := a.kwargsOpt(ctx, "quiesce", args, nil, map[string]any{"hold_seconds": &hold}); err != nil {
		return nil, err
	}
	q, err := a.quiescer("quiesce")
	if err != nil {
		return nil, err
	}
	var d time.Duration
	if hold != nil {
		limit := q.MaxHold().Seconds()
		if *hold <= 0 || *hold > limit {
			return nil, fmt.Errorf("%w: quiesce(): hold_seconds must be more than 0 and at most %v ([storage] quiesce_max_hold), not %v",
				errdefs.ErrInvalidArgument, limit, *hold)
		}
		d = time.Duration(*hold * float64(time.Second))
	}
	st, err := q.Quiesce(ctx, d)
	logctx.Logger(ctx, a.log).Info("quiesce", zap.Bool("quiesced", st.Quiesced), zap.Strings("functions", st.Functions), zap.Error(err))
	if err != nil {
		return nil, err
	}
	return st, nil
}

// rpcUnquiesce is unquiesce() (API 1.3): resume the host's controllers.
func (a *Agent) rpcUnquiesce(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	if err := a.kwargs(ctx, "unquiesce", args, nil); err != nil {
		return nil, err
	}
	q, err := a.quiescer("unquiesce")
	if err != nil {
		return nil, err
	}
	st, err := q.Unquiesce(ctx)
	logctx.Logger(ctx, a.log).Info("unquiesce", zap.Bool("quiesced", st.Quiesced), zap.Error(err))
	if err != nil {
		return nil, err
	}
	return st, nil
}

// quiesceStatus is the observed quiesce state, nil without a quiescer.
func (a *Agent) quiesceStatus() *nodestate.QuiesceStatus {
	if a.opts.Quiescer == nil {
		return nil
	}
	st := a.opts.Quiescer.Status()
	return &st
}
