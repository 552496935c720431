//go:build functional

package network_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// failingPrepare is the sim card whose SF creation fails for chosen SFs
// (firmware out of SF resources for a moment), counting the attempts.
type failingPrepare struct {
	*sim.Network
	mu    sync.Mutex
	fail  map[int]bool
	tries map[int]int
}

func (f *failingPrepare) Prepare(ctx context.Context, fn nodestate.Function, mac string) (string, error) {
	f.mu.Lock()
	n := *fn.SF
	f.tries[n]++
	bad := f.fail[n]
	f.mu.Unlock()
	if bad {
		return "", fmt.Errorf("%w: devlink port add sf %d: no space left", errdefs.ErrNetwork, n)
	}
	return f.Network.Prepare(ctx, fn, mac)
}

func (f *failingPrepare) set(sf int, fail bool) (tries int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[sf] = fail
	return f.tries[sf]
}

// A VIF that failed waits for its own backoff before the next attempt,
// while the other VIFs of the same reconcile are plugged; a changed VIF is
// tried at once.
func TestFailedVIFWaitsForItsBackoff(t *testing.T) {
	drv := &failingPrepare{Network: sim.NewNetwork(0), fail: map[int]bool{71: true}, tries: map[int]int{}}
	node := uuidN('a')
	// An hour's backoff: "not retried yet" holds however slow the test runs.
	const long = time.Hour
	h := newReconcilerWith(t, env, node, drv, 10*time.Second, func(o *network.Options) { o.RetryBase, o.RetryMax = long, long })
	bad := nodestate.VIF{PortID: uuidN('b'), MAC: macN(0x710), Function: sf(0, 71)}
	good := nodestate.VIF{PortID: uuidN('b'), MAC: macN(0x720), Function: sf(0, 72)}
	addLSP(t, env, "ls-retry", good.PortID, good.MAC, "10.7.0.12")
	before := time.Now()
	if err := h.reconcile(bad, good); !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("first reconcile = %v, want ErrNetwork", err)
	}
	after := time.Now()
	if st := h.observe()[good.PortID]; st.State != nodestate.StatePlugged {
		t.Fatalf("the healthy VIF was not plugged beside the failing one: %+v", st)
	}
	// The agent's loop retries when the VIF is due (agent.RetryHinter): one
	// jittered backoff ([½, 1] of it) after the failure.
	if next, lo, hi := h.r.NextRetry(), before.Add(long/2), after.Add(long); next.Before(lo) || next.After(hi) {
		t.Fatalf("NextRetry %v, want within [%v, %v]", next, lo, hi)
	}
	// Again: the failed VIF is not retried yet, and says why.
	if err := h.reconcile(bad, good); !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("second reconcile = %v", err)
	}
	if n := drv.set(71, false); n != 1 {
		t.Fatalf("Prepare of the failed SF tried %d times within its backoff, want 1", n)
	}
	if st := h.observe()[bad.PortID]; st.State != nodestate.StateError || !strings.Contains(st.LastError, "no space left") || !strings.Contains(st.LastError, "retrying in") {
		t.Fatalf("deferred VIF status %+v", st)
	}
	// Changed (new MAC): tried at once, within its backoff.
	bad.MAC = macN(0x711)
	if err := h.reconcile(bad, good); err != nil {
		t.Fatalf("changed VIF not retried at once: %v", err)
	}
	if got := ifaceExtID(t, env, "pf0sf71", "iface-id"); got != bad.PortID {
		t.Fatalf("pf0sf71 iface-id %q after the changed VIF's retry", got)
	}
	h.stop()

	// Unchanged, it is tried again once its backoff has passed (a short one).
	const wait = 400 * time.Millisecond
	h = newReconcilerWith(t, env, node, drv, 10*time.Second, func(o *network.Options) { o.RetryBase, o.RetryMax = wait, wait })
	other := nodestate.VIF{PortID: uuidN('b'), MAC: macN(0x730), Function: sf(0, 73)}
	drv.set(73, true)
	if err := h.reconcile(bad, good, other); !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("reconcile = %v", err)
	}
	drv.set(73, false)
	time.Sleep(wait) // at least the backoff: load can only lengthen it
	if err := h.reconcile(bad, good, other); err != nil {
		t.Fatalf("reconcile after the backoff: %v", err)
	}
	if got := ifaceExtID(t, env, "pf0sf73", "iface-id"); got != other.PortID {
		t.Fatalf("pf0sf73 iface-id %q after the retry", got)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if next := h.r.NextRetry(); !next.IsZero() {
		t.Fatalf("NextRetry %v with no VIF failing", next)
	}
}
