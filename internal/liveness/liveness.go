// Package liveness tells whether the daemon's loops are alive: each loop
// owns a Beat and calls it while it makes progress (idle waits included); a
// loop whose last beat is older than the Monitor's bound is stuck. /livez and
// the systemd watchdog both read Monitor.Check, so they agree.
//
// Liveness says nothing about the broker, SPDK or OVSDB (that is readiness):
// a loop waiting for a broker that is down still beats.
package liveness

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStuck is what Check's error wraps.
var ErrStuck = errors.New("loop stuck")

// Monitor holds the beats of one daemon.
type Monitor struct {
	bound time.Duration

	mu    sync.Mutex
	beats []*Beat
}

// New returns a Monitor that calls a loop stuck when it has not beaten for
// longer than bound.
func New(bound time.Duration) *Monitor {
	if bound <= 0 {
		bound = 5 * time.Minute
	}
	return &Monitor{bound: bound}
}

// Bound is how long a loop may go without a beat.
func (m *Monitor) Bound() time.Duration { return m.bound }

// Register adds a loop by name; it counts as having just beaten.
func (m *Monitor) Register(name string) *Beat {
	b := &Beat{name: name, every: beatInterval(m.bound)}
	b.Beat()
	m.mu.Lock()
	m.beats = append(m.beats, b)
	m.mu.Unlock()
	return b
}

// beatInterval is how often an idle loop beats: well inside the bound, so
// a timer firing late on a loaded machine is not mistaken for a hang.
func beatInterval(bound time.Duration) time.Duration {
	return max(bound/4, time.Millisecond)
}

// Stuck is one loop that missed its bound.
type Stuck struct {
	Name  string
	Since time.Duration // since its last beat
}

// StuckError lists the stuck loops.
type StuckError struct {
	Loops []Stuck
	Bound time.Duration
}

func (e *StuckError) Error() string {
	parts := make([]string, len(e.Loops))
	for i, s := range e.Loops {
		parts[i] = fmt.Sprintf("%s (no progress for %s)", s.Name, s.Since.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s longer than %s: %s", ErrStuck, e.Bound, strings.Join(parts, ", "))
}

func (e *StuckError) Unwrap() error { return ErrStuck }

// Check is nil while every registered loop beat within the bound, else a
// *StuckError naming the loops that did not.
func (m *Monitor) Check() error {
	now := time.Now()
	m.mu.Lock()
	beats := append([]*Beat(nil), m.beats...)
	m.mu.Unlock()
	var stuck []Stuck
	for _, b := range beats {
		if since := now.Sub(time.Unix(0, b.last.Load())); since > m.bound {
			stuck = append(stuck, Stuck{Name: b.name, Since: since})
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	sort.Slice(stuck, func(i, j int) bool { return stuck[i].Name < stuck[j].Name })
	return &StuckError{Loops: stuck, Bound: m.bound}
}

// Names are the registered loops, sorted.
func (m *Monitor) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.beats))
	for i, b := range m.beats {
		out[i] = b.name
	}
	sort.Strings(out)
	return out
}

// Beat is one loop's heartbeat. A nil *Beat ignores every call, so code
// built without a Monitor needs no branches.
type Beat struct {
	name  string
	every time.Duration
	last  atomic.Int64 // unix nanoseconds
}

// Beat records progress now.
func (b *Beat) Beat() {
	if b != nil {
		b.last.Store(time.Now().UnixNano())
	}
}

// Ticker returns a channel that ticks often enough for an idle loop to
// beat well within the bound, and its stop function. A nil Beat's channel
// never ticks.
func (b *Beat) Ticker() (<-chan time.Time, func()) {
	if b == nil {
		return nil, func() {}
	}
	t := time.NewTicker(b.every)
	return t.C, t.Stop
}
