package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/atomicfile"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/jsonx"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Quiescer is the optional drivers.StorageDriver capability of pausing the
// I/O of a host controller (host I/O stalls, nothing is lost) and resuming
// it, for a block-consistent snapshot. A driver implements it only with a
// call its vendor documents (docs/bluefield-snap.md, docs/spdk-nvmf.md).
type Quiescer interface {
	// SuspendController pauses c's I/O; pausing a paused one succeeds.
	SuspendController(ctx context.Context, c drivers.HostController) error
	// ResumeController resumes c; a running or vanished c is success.
	ResumeController(ctx context.Context, c drivers.HostController) error
}

// QuiesceFileName is the hold record inside state_dir.
const QuiesceFileName = "quiesce.json"

// QuiesceSchemaVersion is the layout of QuiesceFileName, "major.minor",
// read like the other state files (internal/jsonx): any minor of major 1
// (newer minors' extra fields are ignored), a newer major is refused.
// History: 1.0 (RPC API 1.3).
const QuiesceSchemaVersion = "1.0"

const quiesceSchemaMajor = 1

// DefaultQuiesceMaxHold is [storage] quiesce_max_hold's default.
const DefaultQuiesceMaxHold = 60 * time.Second

// Resume reasons (nodestate.QuiesceStatus.ResumeReason).
const (
	ResumeUnquiesce = "unquiesce"
	ResumeExpired   = "hold expired"
	ResumeRestart   = "agent restart"
	ResumeStop      = "agent stop"
	ResumeFailed    = "quiesce failed"
)

// HoldOptions build a Hold.
type HoldOptions struct {
	Driver drivers.StorageDriver
	// DriverName is the [dpu] driver, for the NotSupported message.
	DriverName string
	// File persists the paused controllers ("" keeps them in memory only:
	// tests). A crashed agent's record is resumed by the next one.
	File string
	// MaxHold bounds every pause (DefaultQuiesceMaxHold when not positive).
	MaxHold time.Duration
	// RetryMax caps the backoff of a failed resume (default 10s).
	RetryMax time.Duration
	Logger   *zap.Logger
}

// pausedCtrl is one paused controller as the record keeps it.
type pausedCtrl struct {
	Function nodestate.Function `json:"function"`
	ID       string             `json:"id"`
}

func (p pausedCtrl) hc() drivers.HostController {
	return drivers.HostController{Function: p.Function, ID: p.ID}
}

// holdRecord is what is (or may still be) paused.
type holdRecord struct {
	Since       time.Time    `json:"since"`
	Until       time.Time    `json:"until"`
	Controllers []pausedCtrl `json:"controllers"`
}

// quiesceFile is QuiesceFileName's schema 1 layout.
type quiesceFile struct {
	SchemaVersion string      `json:"schema_version"`
	Hold          *holdRecord `json:"hold"`
}

// Hold pauses and resumes the host's controllers and makes sure no pause
// outlives MaxHold, an unquiesce, or the agent: Run resumes a record left
// by a previous process first, resumes at the deadline, and resumes when
// the agent stops. Its methods are safe for concurrent use.
type Hold struct {
	o   HoldOptions
	q   Quiescer // nil: the driver cannot pause
	log *zap.Logger

	wake chan struct{} // the deadline or retry time changed

	opMu sync.Mutex // one pause/resume at a time; never held by Status

	mu  sync.Mutex // guards the fields below
	rec *holdRecord
	// due: rec must be resumed now (after a restart, an unquiesce or a
	// deadline whose resume failed), retried at retryAt.
	due      bool
	reason   string
	retryAt  time.Time
	backoff  time.Duration
	resumed  time.Time
	lastWhy  string
	lastErr  string
	restored bool // rec came from a previous process
}

// NewHold reads the record a previous agent left (a newer schema major is
// refused, like the desired state). It makes no driver call: Run resumes
// whatever the record names.
func NewHold(o HoldOptions) (*Hold, error) {
	if o.Driver == nil {
		return nil, fmt.Errorf("%w: quiesce: no storage driver", errdefs.ErrInvalidArgument)
	}
	if o.MaxHold <= 0 {
		o.MaxHold = DefaultQuiesceMaxHold
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	h := &Hold{o: o, log: o.Logger.With(zap.String("component", "quiesce")), wake: make(chan struct{}, 1)}
	h.q, _ = o.Driver.(Quiescer)
	rec, err := h.load()
	if err != nil {
		return nil, err
	}
	if rec != nil {
		h.rec, h.due, h.reason, h.restored, h.retryAt = rec, true, ResumeRestart, true, time.Now()
	}
	return h, nil
}

func (h *Hold) load() (*holdRecord, error) {
	if h.o.File == "" {
		return nil, nil
	}
	b, err := os.ReadFile(h.o.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", h.o.File, err)
	}
	var f quiesceFile
	ver, unknown, err := jsonx.DecodeVersioned(b, quiesceSchemaMajor, QuiesceSchemaVersion, &f)
	if err == nil && ver == "" {
		err = fmt.Errorf("%w: no schema_version (every version of this file has one)", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", h.o.File, err)
	}
	if len(unknown) > 0 {
		h.log.Warn("ignoring fields of the quiesce record this agent does not know", zap.String("file", h.o.File),
			zap.String("schema_version", ver), zap.Strings("fields", unknown))
	}
	if f.Hold == nil || len(f.Hold.Controllers) == 0 {
		return nil, nil
	}
	return f.Hold, nil
}

// save persists rec (nil removes the file). The record is written before
// anything is paused, so a crash between the two resumes too much, never
// too little.
func (h *Hold) save(rec *holdRecord) error {
	if h.o.File == "" {
		return nil
	}
	if rec == nil {
		if err := os.Remove(h.o.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(quiesceFile{SchemaVersion: QuiesceSchemaVersion, Hold: rec})
	if err != nil {
		return err
	}
	return atomicfile.Write(h.o.File, b, 0o600)
}

// MaxHold is the longest pause the agent allows.
func (h *Hold) MaxHold() time.Duration { return h.o.MaxHold }

// Pauses reports whether fn's controller is held paused: the storage
// reconcile must not make it visible (resume it) meanwhile.
func (h *Hold) Pauses(fn string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rec == nil {
		return false
	}
	for _, c := range h.rec.Controllers {
		if c.Function.String() == fn {
			return true
		}
	}
	return false
}

// Status is the hold's state for get_status and get_state.
func (h *Hold) Status() nodestate.QuiesceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := nodestate.QuiesceStatus{Supported: h.q != nil, MaxHoldSeconds: h.o.MaxHold.Seconds(), ResumeReason: h.lastWhy, LastError: h.lastErr}
	if !h.resumed.IsZero() {
		t := h.resumed
		st.ResumedAt = &t
	}
	if h.rec != nil {
		since, until := h.rec.Since, h.rec.Until
		st.Quiesced, st.Since, st.Until = true, &since, &until
		for _, c := range h.rec.Controllers {
			st.Functions = append(st.Functions, c.Function.String())
		}
	}
	return st
}

func (h *Hold) notify() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Quiesce pauses every host controller of the node for at most hold (0:
// MaxHold). A repeat while quiesced extends the deadline to now+hold and
// pauses controllers that appeared since. All or nothing: when one pause
// fails, every controller is resumed and the error returned.
func (h *Hold) Quiesce(ctx context.Context, hold time.Duration) (nodestate.QuiesceStatus, error) {
	if h.q == nil {
		return h.Status(), fmt.Errorf("%w: the %s driver has no documented call that pauses a host NVMe controller; "+
			"a snapshot of this node is crash-consistent only", errdefs.ErrNotSupported, h.o.DriverName)
	}
	if hold == 0 {
		hold = h.o.MaxHold
	}
	if hold < 0 || hold > h.o.MaxHold {
		return h.Status(), fmt.Errorf("%w: quiesce hold must be more than 0 and at most %v ([storage] quiesce_max_hold), not %v",
			errdefs.ErrInvalidArgument, h.o.MaxHold, hold)
	}
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if reason, due := h.pendingResume(); due {
		// A resume is still pending: finish it before a new pause, so the
		// record never mixes the two.
		if err := h.resume(ctx, reason); err != nil {
			return h.Status(), fmt.Errorf("%w: a previous resume is still pending: %w", errdefs.ErrUnavailable, err)
		}
	}
	ctrls, err := h.o.Driver.Controllers(ctx)
	if err != nil {
		return h.Status(), err
	}
	now := time.Now().UTC()
	h.mu.Lock()
	next := holdRecord{Since: now, Until: now.Add(hold)}
	paused := map[string]bool{}
	if h.rec != nil {
		next.Since = h.rec.Since
		next.Controllers = slices.Clone(h.rec.Controllers)
		for _, c := range h.rec.Controllers {
			paused[c.ID] = true
		}
	}
	h.mu.Unlock()
	var todo []drivers.HostController
	for _, c := range ctrls {
		if !paused[c.ID] {
			todo = append(todo, c)
			next.Controllers = append(next.Controllers, pausedCtrl{Function: c.Function, ID: c.ID})
		}
	}
	if len(next.Controllers) == 0 {
		return h.Status(), fmt.Errorf("%w: quiesce: the node has no host NVMe controller to pause", errdefs.ErrConflict)
	}
	if err := h.save(&next); err != nil {
		return h.Status(), fmt.Errorf("%w: persist quiesce record: %v", errdefs.ErrUnavailable, err)
	}
	h.mu.Lock()
	h.rec = &next
	h.lastErr = ""
	h.mu.Unlock()
	h.notify()
	log := logctx.Logger(ctx, h.log)
	for _, c := range todo {
		if err := h.q.SuspendController(ctx, c); err != nil {
			err = fmt.Errorf("pause host controller %s (%s): %w", c.Function, c.ID, err)
			log.Warn("quiesce failed; resuming every controller", zap.Error(err))
			if rerr := h.resume(ctx, ResumeFailed); rerr != nil {
				err = fmt.Errorf("%w; resume: %v", err, rerr)
			}
			h.setErr(err)
			return h.Status(), err
		}
		log.Info("host controller paused", zap.String("function", c.Function.String()), zap.String("id", c.ID),
			zap.Time("until", next.Until))
	}
	return h.Status(), nil
}

// Unquiesce resumes every paused controller; nothing paused is success. A
// failed resume is returned and retried in the background until it works.
func (h *Hold) Unquiesce(ctx context.Context) (nodestate.QuiesceStatus, error) {
	if h.q == nil {
		return h.Status(), fmt.Errorf("%w: the %s driver cannot pause host NVMe controllers, so there is nothing to resume",
			errdefs.ErrNotSupported, h.o.DriverName)
	}
	h.opMu.Lock()
	defer h.opMu.Unlock()
	err := h.resume(ctx, ResumeUnquiesce)
	return h.Status(), err
}

// pendingResume is the reason of a resume still due, and whether one is.
func (h *Hold) pendingResume() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reason, h.rec != nil && h.due
}

func (h *Hold) setErr(err error) {
	h.mu.Lock()
	h.lastErr = err.Error()
	h.mu.Unlock()
}

// resume resumes every recorded controller. Those that fail stay in the
// record, which is then due for a retry. Caller holds opMu.
func (h *Hold) resume(ctx context.Context, reason string) error {
	h.mu.Lock()
	rec := h.rec
	h.mu.Unlock()
	if rec == nil {
		return nil
	}
	if h.q == nil {
		// A record from a process whose driver could pause (the [dpu]
		// driver changed since): nothing here can resume it.
		err := fmt.Errorf("%w: %d host controllers recorded as paused, but the %s driver cannot resume them",
			errdefs.ErrNotSupported, len(rec.Controllers), h.o.DriverName)
		h.setErr(err)
		return err
	}
	log := logctx.Logger(ctx, h.log)
	var failed []pausedCtrl
	var errs []error
	for _, c := range rec.Controllers {
		if err := h.q.ResumeController(ctx, c.hc()); err != nil {
			failed = append(failed, c)
			errs = append(errs, fmt.Errorf("resume host controller %s (%s): %w", c.Function, c.ID, err))
			continue
		}
		log.Info("host controller resumed", zap.String("function", c.Function.String()), zap.String("id", c.ID),
			zap.String("reason", reason))
	}
	now := time.Now().UTC()
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notify()
	if len(failed) == 0 {
		h.rec, h.due, h.backoff = nil, false, 0
		h.resumed, h.lastWhy, h.lastErr = now, reason, ""
		if err := h.save(nil); err != nil {
			// The controllers run; a stale record only makes the next
			// start resume them again, which is harmless.
			log.Warn("could not remove the quiesce record", zap.Error(err))
		}
		return nil
	}
	left := *rec
	left.Controllers = failed
	h.rec, h.due, h.reason = &left, true, reason
	h.backoff = min(max(2*h.backoff, time.Second), h.o.RetryMax)
	h.retryAt = now.Add(h.backoff)
	err := errors.Join(errs...)
	h.lastErr = err.Error()
	if serr := h.save(&left); serr != nil {
		log.Warn("could not update the quiesce record", zap.Error(serr))
	}
	log.Error("host controllers still paused; retrying", zap.Error(err), zap.Time("retry_at", h.retryAt))
	return err
}

// next is when Run must act: the deadline, or the retry of a due resume;
// zero when nothing is paused.
func (h *Hold) next() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.rec == nil:
		return time.Time{}
	case h.due:
		return h.retryAt
	}
	return h.rec.Until
}

// act resumes when the deadline passed or a resume is due.
func (h *Hold) act(ctx context.Context) {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	h.mu.Lock()
	rec, due, reason := h.rec, h.due, h.reason
	h.mu.Unlock()
	if rec == nil {
		return
	}
	if !due {
		if time.Now().Before(rec.Until) {
			return
		}
		reason = ResumeExpired
		h.log.Warn("quiesce hold expired; resuming the host's controllers", zap.Time("since", rec.Since),
			zap.Time("until", rec.Until))
	}
	_ = h.resume(ctx, reason)
}

// Run resumes a record left by a previous agent at once, then every pause
// at its deadline (retrying failed resumes with backoff), until ctx is done;
// then it resumes whatever is still paused: no controller stays paused
// after the agent. It returns once done.
func (h *Hold) Run(ctx context.Context) {
	h.mu.Lock()
	if h.restored {
		h.log.Warn("a previous agent left host controllers paused; resuming them", zap.Int("controllers", len(h.rec.Controllers)))
		h.restored = false
	}
	h.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		at := h.next()
		if !at.IsZero() && !time.Now().Before(at) {
			h.act(ctx)
			at = h.next()
		}
		wait := time.Hour
		if !at.IsZero() {
			wait = max(time.Until(at), 10*time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			h.stop(ctx)
			return
		case <-h.wake:
		case <-timer.C:
		}
	}
}

// stop resumes what is paused when the agent stops, bounded in time.
func (h *Hold) stop(ctx context.Context) {
	if h.next().IsZero() {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if err := h.resume(sctx, ResumeStop); err != nil {
		h.log.Error("agent stopping with host controllers still paused; the next start resumes them", zap.Error(err))
	}
}
