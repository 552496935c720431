package hello_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/hello"
)

const node = "1BE26C0B-03F2-4D2E-AE87-C02D7F33C123"

type sent struct {
	exchange, key string
	msg           hello.Message
}

// recorder fails the first failures publishes, then records.
type recorder struct {
	mu       sync.Mutex
	failures int
	tries    int
	got      []sent
}

func (r *recorder) Publish(_ context.Context, exchange, key string, body []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if r.failures > 0 {
		r.failures--
		return errors.New("no queue bound")
	}
	var m hello.Message
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	r.got = append(r.got, sent{exchange, key, m})
	return nil
}

func (r *recorder) sent() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.got...)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func start(t *testing.T, r *recorder, gen *int64) *hello.Announcer {
	t.Helper()
	var mu sync.Mutex
	a := hello.New(hello.Options{Publisher: r, Exchange: "ironic_dpu", NodeUUID: node, RPCAPIVersion: "1.0", AgentVersion: "test",
		Generation: func() int64 { mu.Lock(); defer mu.Unlock(); return *gen }, RetryBase: time.Millisecond, RetryMax: 4 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// One announcement per connection: the first says start, later ones
// reconnect; each carries the generation held when it is sent, on the
// node's own routing key (lower case, as the broker ACL names it).
func TestAnnouncesOnEveryConnection(t *testing.T) {
	r := &recorder{}
	gen := int64(0)
	a := start(t, r, &gen)
	time.Sleep(20 * time.Millisecond)
	if len(r.sent()) != 0 {
		t.Fatal("announced before any connection")
	}
	a.Connected()
	waitFor(t, func() bool { return len(r.sent()) == 1 })
	gen = 7 // race-free: the announcer reads it only on the next connection
	a.Connected()
	waitFor(t, func() bool { return len(r.sent()) == 2 })
	got := r.sent()
	for i, want := range []struct {
		reason string
		gen    int64
	}{{hello.ReasonStart, 0}, {hello.ReasonReconnect, 7}} {
		s := got[i]
		if s.exchange != "ironic_dpu" || s.key != "ironic-dpu-conductor.hello.1be26c0b-03f2-4d2e-ae87-c02d7f33c123" {
			t.Fatalf("announcement %d went to %q/%q", i, s.exchange, s.key)
		}
		if s.msg.Version != hello.Version || s.msg.Reason != want.reason || s.msg.Generation != want.gen || s.msg.RPCAPIVersion != "1.0" {
			t.Fatalf("announcement %d = %+v, want reason %s generation %d", i, s.msg, want.reason, want.gen)
		}
	}
}

// Undelivered (no conductor queue bound yet, broker refused it): retried
// until delivered, then no more.
func TestRetriesUntilDelivered(t *testing.T) {
	r := &recorder{failures: 3}
	gen := int64(4)
	a := start(t, r, &gen)
	a.Connected()
	waitFor(t, func() bool { return len(r.sent()) == 1 })
	time.Sleep(30 * time.Millisecond)
	r.mu.Lock()
	tries := r.tries
	r.mu.Unlock()
	if tries != 4 || len(r.sent()) != 1 || r.sent()[0].msg.Generation != 4 {
		t.Fatalf("%d tries, sent %+v; want 3 failures then one delivery", tries, r.sent())
	}
}
