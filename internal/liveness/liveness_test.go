package liveness_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
)

func TestCheckNamesOnlyTheLoopsPastTheBound(t *testing.T) {
	m := liveness.New(300 * time.Millisecond)
	busy := m.Register("reconcile/storage")
	idle := m.Register("rpc/server")
	if err := m.Check(); err != nil {
		t.Fatalf("fresh loops: %v", err)
	}
	stop := time.After(900 * time.Millisecond)
	tick, stopTick := idle.Ticker()
	defer stopTick()
	for done := false; !done; {
		select {
		case <-tick:
			idle.Beat()
		case <-stop:
			done = true
		}
	}
	err := m.Check()
	var se *liveness.StuckError
	if !errors.As(err, &se) || !errors.Is(err, liveness.ErrStuck) {
		t.Fatalf("Check = %v, want a StuckError", err)
	}
	if len(se.Loops) != 1 || se.Loops[0].Name != "reconcile/storage" || se.Loops[0].Since < 600*time.Millisecond {
		t.Fatalf("stuck %+v, want reconcile/storage only", se.Loops)
	}
	if !strings.Contains(err.Error(), "reconcile/storage") || strings.Contains(err.Error(), "rpc/server") {
		t.Fatalf("message %q", err)
	}
	busy.Beat()
	if err := m.Check(); err != nil {
		t.Fatalf("after a beat: %v", err)
	}
	if got := strings.Join(m.Names(), ","); got != "reconcile/storage,rpc/server" {
		t.Fatalf("names %s", got)
	}
}

func TestNilBeatIsANoOp(t *testing.T) {
	var b *liveness.Beat
	b.Beat()
	c, stop := b.Ticker()
	stop()
	if c != nil {
		t.Fatal("a nil beat's ticker must never fire")
	}
}

// TestWaitBeatsUntilItReturns: a loop idle in Wait for three bounds stays
// alive; Wait returns on its timer, on wake, and with ctx's error.
func TestWaitBeatsUntilItReturns(t *testing.T) {
	m := liveness.New(200 * time.Millisecond)
	b := m.Register("idle")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.NewTimer(600 * time.Millisecond)
	if err := b.Wait(ctx, timer.C, nil); err != nil {
		t.Fatalf("timer: %v", err)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("after 3 bounds in Wait: %v", err)
	}
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	if err := b.Wait(ctx, nil, wake); err != nil {
		t.Fatalf("wake: %v", err)
	}
	cancel()
	if err := b.Wait(ctx, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	var none *liveness.Beat // a nil Beat just waits
	if err := none.Wait(context.Background(), time.After(time.Millisecond), nil); err != nil {
		t.Fatalf("nil beat: %v", err)
	}
}
