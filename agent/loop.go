package agent

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/backoff"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// loop owns one component's reconciles: it runs its Reconciler in its own
// goroutine, so a hung SPDK never holds up an OVSDB plug (and the reverse),
// and retries a failed reconcile with backoff without waiting for a trigger.
type loop struct {
	r Reconciler
	// desired is the state to reconcile and the record of what admitted it.
	desired func() (*nodestate.Desired, *state.Admission)
	log     *zap.Logger
	base    time.Duration // first retry delay
	max     time.Duration // retry delay cap (the reconcile period)
	// beat is fed while the loop waits and after each run, never during a
	// Reconcile: a Reconcile that hangs past the liveness bound is a stuck
	// loop (nil: no liveness monitor).
	beat *liveness.Beat

	kick chan struct{} // buffered 1: a request while running means "once more"

	mu sync.Mutex // guards the fields below; never held across Reconcile
	// reqSeq counts requests; a run that starts covers every request made
	// before it, and doneSeq is the reqSeq the last completed run covered.
	reqSeq, doneSeq uint64
	done            chan struct{} // closed and replaced when a run completes
	failures        int           // consecutive failed runs
	loopStatus                    // the record status() copies
}

func newLoop(r Reconciler, desired func() (*nodestate.Desired, *state.Admission), log *zap.Logger, base, max time.Duration, beat *liveness.Beat) *loop {
	return &loop{r: r, desired: desired, log: log.With(zap.String("component", r.Name())), base: base, max: max,
		beat: beat, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// request asks for a run soon and returns a ticket that wait accepts: the
// first run that starts after this call covers it. Never blocks.
func (l *loop) request() uint64 {
	l.mu.Lock()
	l.reqSeq++
	t := l.reqSeq
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return t
}

// wait blocks until a run covering ticket completed or ctx ends; it reports
// whether the run completed.
func (l *loop) wait(ctx context.Context, ticket uint64) bool {
	for {
		l.mu.Lock()
		ok, ch := l.doneSeq >= ticket, l.done
		l.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// run serves requests and retries until ctx is done.
func (l *loop) run(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	tick, stopTick := l.beat.Ticker()
	defer stopTick()
	for {
		l.beat.Beat()
		select {
		case <-ctx.Done():
			return
		case <-tick:
			continue
		case <-l.kick:
		case <-retry.C:
		}
		retry.Stop()
		if log, err := l.once(ctx); err != nil && ctx.Err() == nil {
			d := l.backoff()
			log.Warn("reconcile incomplete; retrying", zap.Duration("in", d), zap.Error(err))
			retry.Reset(d)
		}
	}
}

// backoff is the delay before the next retry: exponential from base,
// capped at the period, with jitter so a fleet does not retry in step; or
// sooner, when the reconciler says an item is due before that.
func (l *loop) backoff() time.Duration {
	l.mu.Lock()
	n := l.failures
	l.mu.Unlock()
	d := backoff.Delay(l.base, l.max, n, rand.Float64())
	if h, ok := l.r.(RetryHinter); ok {
		if at := h.NextRetry(); !at.IsZero() {
			d = min(d, max(time.Until(at), minRetry))
		}
	}
	return d
}

// minRetry keeps a hint in the past from spinning the loop.
const minRetry = 10 * time.Millisecond

// once runs one reconcile against the current desired state and records
// it. It returns the logger of the run: the ids of the request that
// admitted the generation go into every line the reconcile logs (through
// ctx: storage, network, drivers) so one request can be followed from the
// conductor to the SPDK and OVSDB changes it made.
func (l *loop) once(ctx context.Context) (*zap.Logger, error) {
	l.mu.Lock()
	covers := l.reqSeq
	l.mu.Unlock()
	d, adm := l.desired()
	fields := admissionFields(adm)
	log := l.log.With(fields...)
	var err error
	start := time.Now()
	if d.Generation == 0 {
		// Generation 0 means "never told" (admitted states start at 1), not
		// "nothing": leave whatever the DPU holds alone until a desired state
		// arrives over RPC or from Ironic.
		log.Info("no desired state yet; leaving the DPU as it is")
	} else {
		err = l.r.Reconcile(logctx.With(ctx, fields...), d)
		if ctx.Err() != nil {
			return log, nil // stopping: the run did not complete
		}
	}
	l.mu.Lock()
	l.doneSeq = max(l.doneSeq, covers)
	if d.Generation != 0 {
		l.gen, l.err, l.lastEnd, l.lastTook = d.Generation, err, time.Now(), time.Since(start)
		l.runs++
		if err != nil {
			l.failed++
			l.failures++
		} else {
			l.failures = 0
		}
	}
	close(l.done)
	l.done = make(chan struct{})
	l.mu.Unlock()
	log.Debug("reconciled", zap.Int64("generation", d.Generation), zap.Duration("took", time.Since(start)), zap.Error(err))
	return log, err
}

// loopStatus is a loop's record of its last completed run.
type loopStatus struct {
	gen          int64 // generation the last completed run used
	err          error // its error
	runs, failed uint64
	lastEnd      time.Time
	lastTook     time.Duration
}

func (l *loop) status() loopStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loopStatus
}
