package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/agenttest"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
)

// callCtx is call with ctx (e.g. carrying a Caller).
func callCtx(t *testing.T, ctx context.Context, a *agent.Agent, method, args string) (any, error) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &m); err != nil {
		t.Fatal(err)
	}
	return a.Methods()[method](ctx, m)
}

func observed(t *testing.T, dir string, r *agenttest.Reconciler) (*agent.Agent, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	return startAgent(t, dir, agent.Options{Reconcilers: []agent.Reconciler{r}, Logger: zap.New(core)}), logs
}

// Fields a newer peer adds (top-level keyword arguments and fields inside
// them) are ignored and logged; what the agent knows is applied as usual.
func TestUnknownArgumentsAreIgnoredAndLogged(t *testing.T) {
	r := &agenttest.Reconciler{}
	a, logs := observed(t, t.TempDir(), r)
	ctx := agent.WithCaller(context.Background(), agent.Caller{Method: "plug_vif", Version: "1.1", RequestID: "req-new"})
	vif := `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","function":{"pf":0,"vf":3,"numa":1},"colour":"red"}`
	if _, err := callCtx(t, ctx, a, "plug_vif", `{"vif":`+vif+`,"force":true}`); err != nil {
		t.Fatalf("additive fields refused: %v", err)
	}
	if d := a.Desired(); len(d.VIFs) != 1 || *d.VIFs[0].Function.VF != 3 || d.VIFs[0].MAC != "fa:16:3e:00:00:01" {
		t.Fatalf("state %+v", d)
	}
	got := logs.FilterMessageSnippet("ignoring arguments this agent does not know").All()
	if len(got) != 1 {
		t.Fatalf("want one warning, got %d", len(got))
	}
	f := got[0].ContextMap()
	if fmt.Sprint(f["fields"]) != "[force vif.colour vif.function.numa]" || f["method"] != "plug_vif" || f["version"] != "1.1" || f["request_id"] != "req-new" {
		t.Fatalf("warning fields %v", f)
	}
	if _, err := call(t, a, "get_status", `{"verbose":true}`); err != nil {
		t.Fatalf("get_status with an unknown kwarg: %v", err)
	}
}

// The request ids of the call go into the admission's log line, the
// generation record (persisted, and shown by get_state) and the context of
// the reconciles of that generation.
func TestRequestIDsFollowTheAdmissionIntoTheReconcile(t *testing.T) {
	dir := t.TempDir()
	r := &agenttest.Reconciler{}
	a, logs := observed(t, dir, r)
	ctx := agent.WithCaller(context.Background(), agent.Caller{Method: "apply_state", Version: "1.1",
		RequestID: "req-7f3c", GlobalRequestID: "req-nova-91ab"})
	before := time.Now().UTC()
	if _, err := callCtx(t, ctx, a, "apply_state", stateJSON(3, bootVol, vif1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r.Calls() == 1 })
	adm := a.State(context.Background()).Admission
	if adm == nil || adm.Generation != 3 || adm.Method != "apply_state" || adm.RequestID != "req-7f3c" ||
		adm.GlobalRequestID != "req-nova-91ab" || adm.Time.Before(before) {
		t.Fatalf("admission %+v", adm)
	}
	line := logs.FilterMessage("desired state admitted").All()
	if len(line) != 1 || line[0].ContextMap()["request_id"] != "req-7f3c" || line[0].ContextMap()["global_request_id"] != "req-nova-91ab" {
		t.Fatalf("admission line %+v", line)
	}
	if f := r.LogFields()[0]; f["request_id"] != "req-7f3c" || f["global_request_id"] != "req-nova-91ab" {
		t.Fatalf("reconcile context fields %v", f)
	}
	// The loop's own lines of that reconcile carry them too.
	done := logs.FilterMessage("reconciled").FilterField(zap.Int64("generation", 3)).All()
	if len(done) == 0 || done[0].ContextMap()["global_request_id"] != "req-nova-91ab" {
		t.Fatalf("reconciled line %+v", done)
	}
	// Persisted with the state: a restarted agent still shows it.
	st, _ := state.NewStore(dir)
	l, err := st.Load()
	if err != nil || l.Admission == nil || *l.Admission != *adm {
		t.Fatalf("persisted admission %+v %v", l.Admission, err)
	}
	var view map[string]any
	b, _ := json.Marshal(a.State(context.Background()))
	_ = json.Unmarshal(b, &view)
	if m, _ := view["admission"].(map[string]any); m["global_request_id"] != "req-nova-91ab" || m["generation"] != float64(3) {
		t.Fatalf("get_state's admission %v", view["admission"])
	}
	// A single-item edit is recorded with its own ids.
	ctx = agent.WithCaller(context.Background(), agent.Caller{Method: "detach_volume", RequestID: "req-d"})
	if _, err := callCtx(t, ctx, a, "detach_volume", `{"volume_id":"6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"}`); err != nil {
		t.Fatal(err)
	}
	if adm := a.State(context.Background()).Admission; adm.Generation != 4 || adm.Method != "detach_volume" || adm.RequestID != "req-d" || adm.GlobalRequestID != "" {
		t.Fatalf("edit admission %+v", adm)
	}
}

// apply_state's wait (API 1.1) answers once every component reconciled the
// generation, or when wait ran out.
func TestApplyStateWaitsForConvergence(t *testing.T) {
	// ItemWait and the first wait far past poll.HangAfter: the first call can
	// only answer by converging, the second only when its own wait runs out.
	a, stor, _ := twoComponents(t, agent.Options{ItemWait: time.Hour})
	res, err := callReturns(t, a, "apply_state", `{"state":{"generation":2,"volumes":[`+bootVol+`],"vifs":[`+vif1+`]},"wait":3600}`)
	if err != nil {
		t.Fatal(err)
	}
	if v := res.(agent.View); v.Observed.Generation != 2 || len(v.Observed.Volumes) != 1 || len(v.Observed.VIFs) != 1 {
		t.Fatalf("apply_state with wait answered before converging: %+v", v.Observed)
	}
	slow := make(chan struct{})
	defer close(slow)
	stor.SetBlock(slow) // storage never converges on generation 3
	start := time.Now()
	res, err = callReturns(t, a, "apply_state", `{"state":{"generation":3,"volumes":[],"vifs":[`+vif1+`]},"wait":0.3}`)
	if err != nil {
		t.Fatal(err)
	}
	// A lower bound only (no load makes it fail): the call waited its 0.3s
	// rather than answering at once.
	took := time.Since(start)
	if v := res.(agent.View); v.Generation != 3 || v.Observed.Generation != 2 || took < 250*time.Millisecond {
		t.Fatalf("blocked storage: answered %+v after %v", v.Observed, took)
	}
}

func TestStateFileOfANewerAgentIsRefused(t *testing.T) {
	dir := t.TempDir()
	st, _ := state.NewStore(dir)
	if err := writeFile(st.Path(), `{"schema_version":"3.0","desired":{"generation":2}}`); err != nil {
		t.Fatal(err)
	}
	_, err := agent.New(agent.Options{NodeUUID: node, Store: st, Reconcilers: []agent.Reconciler{&agenttest.Reconciler{}}})
	if err == nil || !strings.Contains(err.Error(), "newer than this agent's") {
		t.Fatalf("got %v", err)
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }
