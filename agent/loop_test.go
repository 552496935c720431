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
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
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

// callReturns is call run under poll.Returns: the tests using it make a
// dependency block forever, so returning at all is what they check, not how
// fast (a regression that waits for it hangs and fails the watchdog).
func callReturns(t *testing.T, a *agent.Agent, method string, args string) (res any, err error) {
	t.Helper()
	f := endpoint(t, a, method, args)
	poll.Returns(t, method, func() { res, err = f() })
	return res, err
}

// A hung SPDK (a storage reconcile that never returns) must not delay a
// NIC hot-plug, nor apply_state: plug_vif waits for the network loop only.
func TestHungStorageDelaysNeitherPlugVIFNorApplyState(t *testing.T) {
	// ItemWait far past poll.HangAfter: a call that waited for storage would
	// hang, not just answer late.
	a, stor, net := twoComponents(t, agent.Options{ItemWait: time.Hour})
	hung := make(chan struct{})
	defer close(hung)
	stor.SetBlock(hung)
	if _, err := callReturns(t, a, "apply_state", stateJSON(1, bootVol, "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stor.Started() >= 1 }) // storage is stuck in SPDK now
	res, err := callReturns(t, a, "plug_vif", `{"vif":`+vif1+`}`)
	if err != nil {
		t.Fatal(err)
	}
	if st := res.(nodestate.VIFStatus); st.State != nodestate.StatePlugged || net.Calls() == 0 {
		t.Fatalf("plug_vif answered %+v after %d network reconciles", st, net.Calls())
	}
	// A second full state while storage is still hung: admitted at once too.
	res, err = callReturns(t, a, "apply_state", stateJSON(5, bootVol, vif1))
	if err != nil {
		t.Fatal(err)
	}
	if v := res.(agent.View); v.Generation != 5 || v.Observed.Generation != 0 {
		t.Fatalf("apply_state answered generation %d, observed %d", v.Generation, v.Observed.Generation)
	}
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
	net.SetBlock(slow) // the network reconcile never finishes: only ItemWait ends the wait
	res, err := callReturns(t, a, "plug_vif", `{"vif":`+vif1+`}`)
	if err != nil {
		t.Fatal(err)
	}
	if st := res.(nodestate.VIFStatus); st.State == nodestate.StatePlugged {
		t.Fatalf("plug_vif reported %+v before the network reconcile finished", st)
	}
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

// The single-item calls' replies: the item's observed status after a put;
// "detached"/"unplugged" after a drop, also of an item never there; only
// the id while a put is still converging; a re-plug without a function
// keeps the NIC the VIF has; a bad id names its argument.
func TestSingleItemReplies(t *testing.T) {
	a, _, net := twoComponents(t, agent.Options{ItemWait: 200 * time.Millisecond})
	const volID, portID = "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f", "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01"
	res, err := call(t, a, "attach_volume", `{"volume":`+dataVol+`}`)
	if st, _ := res.(nodestate.VolumeStatus); err != nil || st.VolumeID != volID || st.State != nodestate.StateAttached {
		t.Fatalf("attach_volume = %+v, %v", res, err)
	}
	res, err = call(t, a, "plug_vif", `{"vif":`+vif1+`}`)
	if st, _ := res.(nodestate.VIFStatus); err != nil || st.PortID != portID || st.State != nodestate.StatePlugged {
		t.Fatalf("plug_vif = %+v, %v", res, err)
	}
	if _, err := call(t, a, "plug_vif", `{"vif":{"port_id":"`+portID+`","mac":"fa:16:3e:00:00:01","mtu":9000}}`); err != nil {
		t.Fatal(err)
	}
	if v := a.Desired().VIFs; len(v) != 1 || v[0].MTU != 9000 || v[0].Function == nil || v[0].Function.String() != "pf0vf3" {
		t.Fatalf("re-plug without a function: %+v, want pf0vf3 kept and mtu 9000", v)
	}
	for _, c := range []struct{ method, args, want string }{
		{"detach_volume", `{"volume_id":"` + volID + `"}`, "detached"},
		{"detach_volume", `{"volume_id":"` + volID + `"}`, "detached"}, // gone already
		{"unplug_vif", `{"port_id":"` + portID + `"}`, "unplugged"},
		{"unplug_vif", `{"port_id":"` + portID + `"}`, "unplugged"},
	} {
		res, err := call(t, a, c.method, c.args)
		var id, state string
		switch st := res.(type) {
		case nodestate.VolumeStatus:
			id, state = st.VolumeID, st.State
		case nodestate.VIFStatus:
			id, state = st.PortID, st.State
		}
		if err != nil || state != c.want || (id != volID && id != portID) {
			t.Fatalf("%s = %+v, %v; want %s", c.method, res, err, c.want)
		}
	}
	for method, arg := range map[string]string{"detach_volume": "volume_id", "unplug_vif": "port_id"} {
		_, err := call(t, a, method, `{"`+arg+`":"nope"}`)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), arg+` "nope" is not a UUID`) {
			t.Fatalf("%s(nope) = %v", method, err)
		}
	}
	slow := make(chan struct{})
	defer close(slow)
	net.SetBlock(slow)
	res, err = call(t, a, "plug_vif", `{"vif":`+vif1+`}`)
	if st, _ := res.(nodestate.VIFStatus); err != nil || st != (nodestate.VIFStatus{PortID: portID}) {
		t.Fatalf("converging plug_vif = %+v, %v; want only the port id", res, err)
	}
}
