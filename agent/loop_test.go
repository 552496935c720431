package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/agenttest"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// twoComponents is an agent with a storage and a network fake, each in its
// own loop.
func twoComponents(t *testing.T, o agent.Options) (*agent.Agent, *agenttest.Reconciler, *agenttest.Reconciler) {
	t.Helper()
	stor := &agenttest.Reconciler{NameValue: agent.ComponentStorage}
	net := &agenttest.Reconciler{NameValue: agent.ComponentNetwork}
	o.Reconcilers = []agent.Reconciler{stor, net}
	return startAgent(t, t.TempDir(), o), stor, net
}

// timed runs f and fails the test when it takes longer than bound.
func timed(t *testing.T, what string, bound time.Duration, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if took := time.Since(start); took > bound {
		t.Fatalf("%s took %v, want < %v", what, took, bound)
	}
}

// A hung SPDK (a storage reconcile that never returns) must not delay a
// NIC hot-plug, nor apply_state: plug_vif waits for the network loop only.
func TestHungStorageDelaysNeitherPlugVIFNorApplyState(t *testing.T) {
	a, stor, net := twoComponents(t, agent.Options{ItemWait: time.Minute})
	hung := make(chan struct{})
	defer close(hung)
	stor.SetBlock(hung)
	timed(t, "apply_state", time.Second, func() {
		if _, err := call(t, a, "apply_state", stateJSON(1, bootVol, "")); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, func() bool { return stor.Started() >= 1 }) // storage is stuck in SPDK now
	var st nodestate.VIFStatus
	timed(t, "plug_vif", time.Second, func() {
		res, err := call(t, a, "plug_vif", `{"vif":`+vif1+`}`)
		if err != nil {
			t.Fatal(err)
		}
		st = res.(nodestate.VIFStatus)
	})
	if st.State != nodestate.StatePlugged || net.Calls() == 0 {
		t.Fatalf("plug_vif answered %+v after %d network reconciles", st, net.Calls())
	}
	// A second full state while storage is still hung: admitted at once too.
	timed(t, "apply_state", time.Second, func() {
		res, err := call(t, a, "apply_state", stateJSON(5, bootVol, vif1))
		if err != nil {
			t.Fatal(err)
		}
		if v := res.(agent.View); v.Generation != 5 || v.Observed.Generation != 0 {
			t.Fatalf("apply_state answered generation %d, observed %d", v.Generation, v.Observed.Generation)
		}
	})
	waitFor(t, func() bool {
		return a.State(context.Background()).Observed.Components[agent.ComponentNetwork].Generation == 5
	})
	if o := a.State(context.Background()).Observed; o.Generation != 0 || stor.Calls() != 0 {
		t.Fatalf("observed generation %d with storage hung (want 0, the minimum)", o.Generation)
	}
}

// apply_state returns before a slow reconcile completes; observed.generation
// says when it did.
func TestApplyStateReturnsBeforeSlowReconcile(t *testing.T) {
	a, stor, net := twoComponents(t, agent.Options{})
	slow := make(chan struct{})
	stor.SetBlock(slow)
	net.SetBlock(slow)
	res, err := call(t, a, "apply_state", stateJSON(2, bootVol, vif1))
	if err != nil {
		t.Fatal(err)
	}
	if v := res.(agent.View); v.Generation != 2 || v.Observed.Generation != 0 {
		t.Fatalf("apply_state answered %+v", v)
	}
	waitFor(t, func() bool { return stor.Started() >= 1 && net.Started() >= 1 })
	if stor.Calls() != 0 || net.Calls() != 0 {
		t.Fatal("reconciles completed while blocked")
	}
	close(slow)
	waitFor(t, func() bool { return a.State(context.Background()).Observed.Generation == 2 })
}

// A failed reconcile is retried with backoff without any trigger (the
// period is an hour here), and the retry clears the recorded error.
func TestFailedReconcileIsRetriedWithoutTrigger(t *testing.T) {
	a, stor, _ := twoComponents(t, agent.Options{Interval: time.Hour, RetryBase: 20 * time.Millisecond})
	stor.Set(fmt.Errorf("bdev_nvme_attach_controller: %w", errdefs.ErrStorage), nil, nil)
	if _, err := call(t, a, "apply_state", stateJSON(1, bootVol, "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stor.Calls() >= 3 }) // first run + two retries
	if e := a.State(context.Background()).Observed.Components[agent.ComponentStorage].LastError; !strings.Contains(e, "bdev_nvme_attach_controller") {
		t.Fatalf("component error %q", e)
	}
	stor.Set(nil, nil, nil)
	waitFor(t, func() bool {
		return a.State(context.Background()).Observed.Components[agent.ComponentStorage].LastError == ""
	})
	n := stor.Calls()
	time.Sleep(200 * time.Millisecond)
	if stor.Calls() != n {
		t.Fatalf("kept retrying after success: %d -> %d", n, stor.Calls())
	}
	if st := a.Status(context.Background()); st.Failures < 2 || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// A reconciler with per-item backoff (the network's, per VIF) says when an
// item is due; the loop retries then, not after its own (here: an hour).
func TestRetryFollowsTheReconcilersHint(t *testing.T) {
	a, _, net := twoComponents(t, agent.Options{Interval: time.Hour, RetryBase: time.Hour})
	net.Set(fmt.Errorf("vif x: %w", errdefs.ErrNetwork), nil, nil)
	net.SetRetry(time.Now().Add(50 * time.Millisecond))
	if _, err := call(t, a, "apply_state", stateJSON(1, "", vif1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return net.Calls() >= 2 })
	net.Set(nil, nil, nil)
	// The hint now lies in the past: retried at once until it succeeds, then no more.
	waitFor(t, func() bool {
		return net.Calls() >= 3 && a.State(context.Background()).Observed.Components[agent.ComponentNetwork].LastError == ""
	})
	n := net.Calls()
	time.Sleep(100 * time.Millisecond)
	if net.Calls() != n {
		t.Fatalf("kept retrying after success: %d -> %d", n, net.Calls())
	}
}

// The conductor mints generations: a single-item edit that names the
// generation it expects is refused when the agent holds another, and
// otherwise becomes expected+1 even when the item was already there.
func TestSingleItemEditExpectedGeneration(t *testing.T) {
	a, _, _ := twoComponents(t, agent.Options{})
	if _, err := call(t, a, "apply_state", stateJSON(7, "", "")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, args string }{
		{"plug_vif", `{"vif":` + vif1 + `,"expected_generation":6}`},
		{"unplug_vif", `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","expected_generation":8}`},
		{"attach_volume", `{"volume":` + bootVol + `,"expected_generation":0}`},
		{"detach_volume", `{"volume_id":"6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11","expected_generation":1}`},
	} {
		if _, err := call(t, a, c.method, c.args); !errors.Is(err, errdefs.ErrConflict) {
			t.Fatalf("%s %s: got %v, want Conflict", c.method, c.args, err)
		}
	}
	if g := a.Desired().Generation; g != 7 {
		t.Fatalf("refused edits changed the generation to %d", g)
	}
	for i, gen := range []int{7, 8} { // the same plug twice: 8, then 9
		if _, err := call(t, a, "plug_vif", fmt.Sprintf(`{"vif":%s,"expected_generation":%d}`, vif1, gen)); err != nil {
			t.Fatalf("plug %d: %v", i, err)
		}
		if g := a.Desired().Generation; g != int64(gen+1) {
			t.Fatalf("generation %d after plug with expected %d", g, gen)
		}
	}
	// Without it: today's behaviour (an unchanged repeat keeps the generation).
	if _, err := call(t, a, "plug_vif", `{"vif":`+vif1+`}`); err != nil || a.Desired().Generation != 9 {
		t.Fatalf("plain repeat: %v, generation %d", err, a.Desired().Generation)
	}
	if _, err := call(t, a, "plug_vif", `{"vif":`+vif1+`,"expected_generation":"9"}`); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("string generation: %v", err)
	}
}

// A single-item edit waits for its own component at most ItemWait, then
// answers with the item pending (no error): the caller polls get_state.
func TestSingleItemWaitIsBounded(t *testing.T) {
	a, _, net := twoComponents(t, agent.Options{ItemWait: 100 * time.Millisecond})
	slow := make(chan struct{})
	defer close(slow)
	net.SetBlock(slow)
	timed(t, "plug_vif", 2*time.Second, func() {
		res, err := call(t, a, "plug_vif", `{"vif":`+vif1+`}`)
		if err != nil {
			t.Fatal(err)
		}
		if st := res.(nodestate.VIFStatus); st.State == nodestate.StatePlugged {
			t.Fatalf("plug_vif reported %+v before the network reconcile finished", st)
		}
	})
}

// A reconcile that hangs past the liveness bound makes its loop stuck, by
// name; the idle loop beside it (and a loop that finished) stays alive, and
// the stuck one is alive again once its reconcile returns.
func TestHungReconcileIsReportedStuckByItsLoopOnly(t *testing.T) {
	mon := liveness.New(500 * time.Millisecond)
	a, stor, _ := twoComponents(t, agent.Options{Liveness: mon})
	if got := strings.Join(mon.Names(), ","); got != "reconcile/network,reconcile/storage" {
		t.Fatalf("loops %s", got)
	}
	time.Sleep(1500 * time.Millisecond) // idle loops, longer than the bound
	if err := mon.Check(); err != nil {
		t.Fatalf("idle loops reported stuck: %v", err)
	}
	hung := make(chan struct{})
	stor.SetBlock(hung)
	if _, err := call(t, a, "apply_state", stateJSON(1, bootVol, "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stor.Started() >= 1 })
	time.Sleep(1200 * time.Millisecond)
	var se *liveness.StuckError
	if err := mon.Check(); !errors.As(err, &se) || len(se.Loops) != 1 || se.Loops[0].Name != "reconcile/storage" {
		t.Fatalf("Check = %v, want reconcile/storage stuck alone", err)
	}
	close(hung)
	waitFor(t, func() bool { return mon.Check() == nil })
}
