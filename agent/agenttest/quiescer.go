package agenttest

import (
	"context"
	"sync"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Quiescer is a fake agent.HostQuiescer: it records the holds asked for and
// reports itself quiesced between Quiesce and Unquiesce.
type Quiescer struct {
	Max time.Duration
	// Err, when set, is what Quiesce and Unquiesce return.
	Err error

	mu      sync.Mutex
	holds   []time.Duration
	st      nodestate.QuiesceStatus
	running bool
	runs    int
}

func (q *Quiescer) Quiesce(_ context.Context, hold time.Duration) (nodestate.QuiesceStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.holds = append(q.holds, hold)
	if q.Err != nil {
		return q.st, q.Err
	}
	now := time.Now()
	until := now.Add(hold)
	q.st = nodestate.QuiesceStatus{Quiesced: true, Supported: true, Since: &now, Until: &until, Functions: []string{"pf0"}, MaxHoldSeconds: q.Max.Seconds()}
	return q.st, nil
}

func (q *Quiescer) Unquiesce(context.Context) (nodestate.QuiesceStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Err != nil {
		return q.st, q.Err
	}
	q.st = nodestate.QuiesceStatus{Supported: true, MaxHoldSeconds: q.Max.Seconds(), ResumeReason: "unquiesce"}
	return q.st, nil
}

func (q *Quiescer) Status() nodestate.QuiesceStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st
}

func (q *Quiescer) MaxHold() time.Duration { return q.Max }

// Run records that it runs until ctx is done.
func (q *Quiescer) Run(ctx context.Context) {
	q.mu.Lock()
	q.running, q.runs = true, q.runs+1
	q.mu.Unlock()
	<-ctx.Done()
	q.mu.Lock()
	q.running = false
	q.mu.Unlock()
}

// Holds are the holds Quiesce was asked for.
func (q *Quiescer) Holds() []time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]time.Duration(nil), q.holds...)
}

// Running reports whether Run is running, and how often it was started.
func (q *Quiescer) Running() (bool, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, q.runs
}
