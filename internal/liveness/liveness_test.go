package liveness_test

import (
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
