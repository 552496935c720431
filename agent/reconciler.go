package agent

import (
	"context"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Reconciler brings one part of the DPU (storage, network) to the desired
// state. Reconcile is called from the component's own loop goroutine only,
// so Reconcile calls never overlap; Validate, Observe and Health may run
// concurrently with it.
type Reconciler interface {
	// Name is the component name shown in get_status ("storage", "network").
	Name() string
	// Validate checks the parts of d this reconciler owns, beyond the generic
	// checks of nodestate.Desired.Validate (e.g. a PF the card does not have).
	// It must not change anything.
	Validate(ctx context.Context, d *nodestate.Desired) error
	// Reconcile compares d with what the DPU holds and fixes only the
	// difference: an unchanged d makes no mutating call. Items the agent
	// created that are no longer in d are removed. Per-item failures are
	// recorded for Observe and returned wrapped in an errdefs kind.
	Reconcile(ctx context.Context, d *nodestate.Desired) error
	// Observe fills this reconciler's part of obs from the last reconcile.
	Observe(ctx context.Context, obs *nodestate.Observed)
	// Health reports whether the component's backend (SPDK, OVSDB) is
	// reachable now; nil means healthy.
	Health(ctx context.Context) error
}

// Admitter is implemented by reconcilers that act on a desired state before
// it is persisted: the storage reconciler decodes the config drive, writes
// the image and drops its data from d. Admit runs once every Validate has
// passed; an error refuses the state and nothing is persisted.
type Admitter interface {
	Admit(ctx context.Context, d *nodestate.Desired) error
}

// RetryHinter is implemented by reconcilers that keep per-item backoff (the
// network reconciler, per VIF): after a failed reconcile the loop retries
// at NextRetry when that comes before its own backoff, so an item is
// retried when its own backoff ends. The zero time means no hint.
type RetryHinter interface {
	NextRetry() time.Time
}
