package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/agenttest"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

func newAgent(t *testing.T, dir string, r *agenttest.Reconciler) *agent.Agent {
	t.Helper()
	return startAgent(t, dir, agent.Options{Reconcilers: []agent.Reconciler{r}})
}

// startAgent builds an agent on dir with o (node, driver, SF base filled
// in) and runs it until the test ends.
func startAgent(t *testing.T, dir string, o agent.Options) *agent.Agent {
	t.Helper()
	st, err := state.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	o.NodeUUID, o.DriverName, o.Store, o.SFBase = node, "sim", st, 1
	a, err := agent.New(o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	return a
}

// run runs a until the test ends and checks that Run stops.
func run(t *testing.T, a *agent.Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop")
		}
	})
}

func call(t *testing.T, a *agent.Agent, method string, args string) (any, error) {
	t.Helper()
	return endpoint(t, a, method, args)()
}

// method_ decodes args and returns the endpoint call, made when invoked.
func endpoint(t *testing.T, a *agent.Agent, method string, args string) func() (any, error) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(args), &m); err != nil {
		t.Fatal(err)
	}
	fn, ok := a.Methods()[method]
	if !ok {
		t.Fatalf("no method %s", method)
	}
	return func() (any, error) { return fn(context.Background(), m) }
}

const bootVol = `{"volume_id":"6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11","boot_index":0,"connection_info":{"driver_volume_type":"nvmeof","data":{"nqn":"nqn.2010-10.org.openstack:volume-6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11","target_portal":"127.0.0.1","target_port":4420,"transport_type":"tcp","ns_id":1}}}`
const dataVol = `{"volume_id":"a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f","connection_info":{"driver_volume_type":"nvmeof","data":{"target_nqn":"nqn.2010-10.org.openstack:volume-a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f","vol_uuid":"a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f","portals":[["127.0.0.1",4420,"tcp"],["127.0.0.1",4421,"tcp"]]}}}`
const vif1 = `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","function":{"pf":0,"vf":3},"mtu":1450}`

func stateJSON(gen int, vols, vifs string) string {
	return fmt.Sprintf(`{"state":{"generation":%d,"node_uuid":%q,"volumes":[%s],"vifs":[%s]}}`, gen, node, vols, vifs)
}

func TestApplyStatePersistsAndReconciles(t *testing.T) {
	dir := t.TempDir()
	r := &agenttest.Reconciler{}
	a := newAgent(t, dir, r)
	res, err := call(t, a, "apply_state", stateJSON(3, bootVol+","+dataVol, vif1))
	if err != nil {
		t.Fatal(err)
	}
	if v := res.(agent.View); v.Desired.Generation != 3 || v.Generation != 3 {
		t.Fatalf("unexpected view %+v", v)
	}
	waitFor(t, func() bool { return a.State(context.Background()).Observed.Generation == 3 })
	v := a.State(context.Background())
	if len(v.Observed.Volumes) != 2 || len(v.Observed.VIFs) != 1 || v.Observed.Components["test"].Generation != 3 {
		t.Fatalf("converged view %+v", v)
	}
	if r.Calls() != 1 {
		t.Fatalf("reconciles = %d, want 1", r.Calls())
	}
	// A restarted agent sees the same state and generation.
	b := newAgent(t, dir, &agenttest.Reconciler{})
	got := b.Desired()
	if got.Generation != 3 || len(got.Volumes) != 2 || got.VIFs[0].MTU != 1450 {
		t.Fatalf("reloaded state %+v", got)
	}
	if *got.VIFs[0].Function.VF != 3 {
		t.Fatalf("function lost: %+v", got.VIFs[0].Function)
	}
}

func TestApplyStateGenerationRules(t *testing.T) {
	r := &agenttest.Reconciler{}
	a := newAgent(t, t.TempDir(), r)
	if _, err := call(t, a, "apply_state", stateJSON(5, bootVol, "")); err != nil {
		t.Fatal(err)
	}
	_, err := call(t, a, "apply_state", stateJSON(4, "", ""))
	if !errors.Is(err, errdefs.ErrConflict) || agent.ExceptionClass(err) != "Conflict" {
		t.Fatalf("older generation: got %v", err)
	}
	// Same generation, same content: an idempotent retry.
	if _, err := call(t, a, "apply_state", stateJSON(5, bootVol, "")); err != nil {
		t.Fatalf("retry of same generation: %v", err)
	}
	// Same generation, other content: refused.
	if _, err := call(t, a, "apply_state", stateJSON(5, "", "")); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("same generation other content: got %v", err)
	}
	if g := a.Desired().Generation; g != 5 || len(a.Desired().Volumes) != 1 {
		t.Fatalf("state changed by refused calls: gen %d", g)
	}
}

func TestInvalidInputChangesNothing(t *testing.T) {
	dir := t.TempDir()
	r := &agenttest.Reconciler{}
	a := newAgent(t, dir, r)
	badVIF := `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02","mac":"fa:16:3e:00:00:02","function":{"pf":0,"vf":3}}`
	twoBoots := `{"volume_id":"a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f","boot_index":0,"connection_info":{"driver_volume_type":"nvmeof","data":{"target_nqn":"nqn.2010-10.org.openstack:v","portals":[["127.0.0.1",4420,"tcp"]]}}}`
	cases := map[string][2]string{
		"bad mac":                 {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00"}}`},
		"multicast mac":           {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"01:16:3e:00:00:01"}}`},
		"port not uuid":           {"plug_vif", `{"vif":{"port_id":"port-1","mac":"fa:16:3e:00:00:01"}}`},
		"negative vf":             {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","function":{"pf":0,"vf":-1}}}`},
		"huge sf":                 {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","function":{"pf":0,"sf":99999999}}}`},
		"vf and sf":               {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","function":{"pf":0,"vf":1,"sf":1}}}`},
		"known field, wrong type": {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"fa:16:3e:00:00:01","mtu":"big"}}`},
		"negative wait":           {"apply_state", `{"state":{"generation":1,"volumes":[],"vifs":[]},"wait":-1}`},
		"wait not a number":       {"apply_state", `{"state":{"generation":1,"volumes":[],"vifs":[]},"wait":"soon"}`},
		"missing kwarg":           {"plug_vif", `{}`},
		"wrong type":              {"detach_volume", `{"volume_id":42}`},
		"iscsi":                   {"attach_volume", `{"volume":{"volume_id":"a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f","connection_info":{"driver_volume_type":"iscsi","data":{}}}}`},
		"duplicate boot":          {"apply_state", stateJSON(1, bootVol+","+twoBoots, "")},
		"duplicate function":      {"apply_state", stateJSON(1, "", vif1+","+badVIF)},
		"other node":              {"apply_state", `{"state":{"generation":1,"node_uuid":"00000000-0000-4000-8000-000000000000","volumes":[],"vifs":[]}}`},
		"state not object":        {"apply_state", `{"state":[1,2]}`},
		"zero mac":                {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"00:00:00:00:00:00"}}`},
		"broadcast mac":           {"plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"FF:FF:FF:FF:FF:FF"}}`},
		"zero mac in state":       {"apply_state", stateJSON(1, "", `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"00:00:00:00:00:00"}`)},
		"20000 vifs":              {"apply_state", stateJSON(1, "", manyVIFs(20000))},
		"65 vifs":                 {"apply_state", stateJSON(1, "", manyVIFs(nodestate.DefaultMaxVIFs+1))},
		"33 volumes":              {"apply_state", stateJSON(1, manyVolumes(nodestate.DefaultMaxVolumes+1), "")},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := call(t, a, c[0], c[1])
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
			if agent.ExceptionClass(err) != "InvalidParameterValue" {
				t.Fatalf("class %s", agent.ExceptionClass(err))
			}
		})
	}
	if r.Calls() != 0 || r.Validates != 0 {
		t.Fatalf("bad input reached the reconciler: %d reconciles, %d validates", r.Calls(), r.Validates)
	}
	if _, err := os.Stat(dir + "/" + state.FileName); !os.IsNotExist(err) {
		t.Fatalf("bad input was persisted: %v", err)
	}
}

// manyVIFs is n valid, distinct SF-less VIFs.
func manyVIFs(n int) string {
	vifs := make([]string, n)
	for i := range vifs {
		vifs[i] = fmt.Sprintf(`{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-%012x","mac":"fa:16:3e:%02x:%02x:%02x"}`, i, i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return strings.Join(vifs, ",")
}

// manyVolumes is n valid, distinct data volumes.
func manyVolumes(n int) string {
	vols := make([]string, n)
	for i := range vols {
		id := fmt.Sprintf("a2d4c6e8-1f3b-4d5a-8c7e-%012x", i)
		vols[i] = fmt.Sprintf(`{"volume_id":%q,"connection_info":{"driver_volume_type":"nvmeof","data":{"target_nqn":"nqn.2010-10.org.openstack:volume-%s","portals":[["127.0.0.1",4420,"tcp"]]}}}`, id, id)
	}
	return strings.Join(vols, ",")
}

// The limits are the documented maximum, not one less; plug_vif past it
// is refused like apply_state.
func TestLimitsAreInclusiveAndApplyToPlugVIF(t *testing.T) {
	r := &agenttest.Reconciler{}
	a := newAgent(t, t.TempDir(), r)
	if _, err := call(t, a, "apply_state", stateJSON(1, manyVolumes(nodestate.DefaultMaxVolumes), manyVIFs(nodestate.DefaultMaxVIFs))); err != nil {
		t.Fatal(err)
	}
	_, err := call(t, a, "plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-ffffffffffff","mac":"fa:16:3e:ff:ff:ff"}}`)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "max_vifs") {
		t.Fatalf("plug_vif past the limit: %v", err)
	}
	if d := a.Desired(); d.Generation != 1 || len(d.VIFs) != nodestate.DefaultMaxVIFs {
		t.Fatalf("refused plug changed the state: gen %d, %d vifs", d.Generation, len(d.VIFs))
	}
}

// MACs are stored (and so plugged) lower-case; the same MAC in upper case
// is the same state, not a new generation or a Conflict.
func TestMACsAreLowerCasedAtAdmission(t *testing.T) {
	r := &agenttest.Reconciler{}
	a := newAgent(t, t.TempDir(), r)
	up := `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01","mac":"FA:16:3E:0A:BB:01","function":{"pf":0,"vf":3}}`
	if _, err := call(t, a, "apply_state", stateJSON(1, "", up)); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, a, "apply_state", stateJSON(1, "", up)); err != nil {
		t.Fatalf("retry of the same generation: %v", err)
	}
	if _, err := call(t, a, "plug_vif", `{"vif":`+up+`}`); err != nil {
		t.Fatal(err)
	}
	d := a.Desired()
	if d.Generation != 1 || d.VIFs[0].MAC != "fa:16:3e:0a:bb:01" {
		t.Fatalf("stored %+v gen %d", d.VIFs, d.Generation)
	}
	if seen := r.Seen(); seen[len(seen)-1].VIFs[0].MAC != "fa:16:3e:0a:bb:01" {
		t.Fatalf("reconciler got %q", seen[len(seen)-1].VIFs[0].MAC)
	}
}

func TestConvenienceMethodsAreIdempotent(t *testing.T) {
	r := &agenttest.Reconciler{}
	a := newAgent(t, t.TempDir(), r)
	for i := 0; i < 2; i++ {
		res, err := call(t, a, "attach_volume", `{"volume":`+bootVol+`}`)
		if err != nil {
			t.Fatal(err)
		}
		if st := res.(nodestate.VolumeStatus); st.NSID != 1 || st.State != nodestate.StateAttached {
			t.Fatalf("status %+v", st)
		}
	}
	if g := a.Desired().Generation; g != 1 {
		t.Fatalf("generation %d after two identical attaches, want 1", g)
	}
	noFn := `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02","mac":"fa:16:3e:00:00:02"}}`
	for i := 0; i < 2; i++ {
		res, err := call(t, a, "plug_vif", noFn)
		if err != nil {
			t.Fatal(err)
		}
		st := res.(nodestate.VIFStatus)
		if st.Function == nil || st.Function.SF == nil || *st.Function.SF != 1 {
			t.Fatalf("allocated function %+v, want sf 1", st.Function)
		}
	}
	if g := a.Desired().Generation; g != 2 {
		t.Fatalf("generation %d, want 2", g)
	}
	// A second SF-less VIF gets the next SF; the first keeps its own.
	if _, err := call(t, a, "plug_vif", `{"vif":{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a03","mac":"fa:16:3e:00:00:03"}}`); err != nil {
		t.Fatal(err)
	}
	d := a.Desired()
	if *d.VIFs[0].Function.SF != 1 || *d.VIFs[1].Function.SF != 2 {
		t.Fatalf("functions %+v %+v", d.VIFs[0].Function, d.VIFs[1].Function)
	}
	for i := 0; i < 2; i++ {
		if _, err := call(t, a, "unplug_vif", `{"port_id":"0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02"}`); err != nil {
			t.Fatal(err)
		}
		if _, err := call(t, a, "detach_volume", `{"volume_id":"6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"}`); err != nil {
			t.Fatal(err)
		}
	}
	d = a.Desired()
	if len(d.VIFs) != 1 || len(d.Volumes) != 0 || d.Generation != 5 {
		t.Fatalf("after unplug/detach: %+v", d)
	}
}

func TestReconcileErrorIsClassifiedAndStateKept(t *testing.T) {
	r := &agenttest.Reconciler{NameValue: "storage"}
	r.Set(fmt.Errorf("attach Nvme0: %w", errdefs.ErrStorage), nil, nil)
	a := newAgent(t, t.TempDir(), r)
	_, err := call(t, a, "attach_volume", `{"volume":`+bootVol+`}`)
	if agent.ExceptionClass(err) != "StorageError" {
		t.Fatalf("got %v (%s)", err, agent.ExceptionClass(err))
	}
	if len(a.Desired().Volumes) != 1 {
		t.Fatal("desired state must keep the volume so the agent retries")
	}
	st := a.Status(context.Background())
	if st.LastError == "" || st.Generation != 1 {
		t.Fatalf("status %+v", st)
	}
}

// seeded is a store that already holds a generation-1 state.
func seeded(t *testing.T) *state.Store {
	t.Helper()
	st, _ := state.NewStore(t.TempDir())
	if err := st.Save(&nodestate.Desired{Generation: 1, NodeUUID: node, Volumes: []nodestate.Volume{}, VIFs: []nodestate.VIF{}}, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRunReconcilesAtStartOnRequestAndPeriodically(t *testing.T) {
	r := &agenttest.Reconciler{}
	st := seeded(t)
	a, err := agent.New(agent.Options{NodeUUID: node, Store: st, Reconcilers: []agent.Reconciler{r}, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, func() bool { return r.Calls() >= 1 })
	a.RequestReconcile()
	waitFor(t, func() bool { return r.Calls() >= 3 }) // request + at least one periodic
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// A Wakeup made before the agent (as the daemon makes it, for the SPDK and
// OVSDB connection goroutines) reaches the component loops once Run runs,
// and nothing reconciles before Run.
func TestWakeupRequestsAReconcile(t *testing.T) {
	r := &agenttest.Reconciler{}
	wake := agent.NewWakeup()
	a, err := agent.New(agent.Options{NodeUUID: node, Store: seeded(t), Reconcilers: []agent.Reconciler{r},
		Interval: time.Hour, Wakeup: wake})
	if err != nil {
		t.Fatal(err)
	}
	wake.Request()
	time.Sleep(50 * time.Millisecond)
	if n := r.Calls(); n != 0 {
		t.Fatalf("%d reconciles before Run", n)
	}
	run(t, a)
	waitFor(t, func() bool { return r.Calls() >= 1 })
	time.Sleep(100 * time.Millisecond) // the pending request may fold into the start
	n := r.Calls()
	wake.Request()
	waitFor(t, func() bool { return r.Calls() > n })
}

func TestStatusReportsComponentHealth(t *testing.T) {
	r := &agenttest.Reconciler{NameValue: "network"}
	r.Set(nil, nil, fmt.Errorf("ovsdb unreachable: %w", errdefs.ErrUnavailable))
	a := startAgent(t, t.TempDir(), agent.Options{Reconcilers: []agent.Reconciler{r}, RPCHealth: func() error { return nil }})
	res, err := call(t, a, "get_status", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	st := res.(agent.Status)
	if st.NodeUUID != node || st.RPCAPIVersion != "1.3" || st.Driver != "sim" || st.Healthy {
		t.Fatalf("status %+v", st)
	}
	if !st.Components["rpc"].Healthy || st.Components["network"].Healthy || st.Components["network"].Detail == "" {
		t.Fatalf("components %+v", st.Components)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestComponentRecoveryTriggersReconcile(t *testing.T) {
	r := &agenttest.Reconciler{NameValue: "storage"}
	r.Set(nil, nil, fmt.Errorf("spdk down: %w", errdefs.ErrUnavailable))
	st := seeded(t)
	a, err := agent.New(agent.Options{NodeUUID: node, Store: st, Reconcilers: []agent.Reconciler{r},
		Interval: time.Hour, HealthInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Run(ctx) }()
	waitFor(t, func() bool { return r.Calls() == 1 }) // the start reconcile
	time.Sleep(50 * time.Millisecond)
	if r.Calls() != 1 {
		t.Fatalf("reconciled %d times while the component stayed down", r.Calls())
	}
	r.Set(nil, nil, nil)
	waitFor(t, func() bool { return r.Calls() == 2 })
	time.Sleep(50 * time.Millisecond)
	if r.Calls() != 2 {
		t.Fatalf("kept reconciling after recovery: %d", r.Calls())
	}
}

// A state_dir kept across a node_uuid change holds another node's volumes
// and ports; reconciling them would expose them to this host.
func TestRefusesAnotherNodesPersistedState(t *testing.T) {
	dir := t.TempDir()
	a := newAgent(t, dir, &agenttest.Reconciler{})
	if _, err := call(t, a, "apply_state", stateJSON(3, bootVol, vif1)); err != nil {
		t.Fatal(err)
	}
	st, _ := state.NewStore(dir)
	r := &agenttest.Reconciler{}
	_, err := agent.New(agent.Options{NodeUUID: "00000000-0000-4000-8000-000000000000", Store: st, Reconcilers: []agent.Reconciler{r}})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("agent for another node started on this state: %v", err)
	}
	// Same node, other spelling: still ours.
	if _, err := agent.New(agent.Options{NodeUUID: strings.ToUpper(node), Store: st, Reconcilers: []agent.Reconciler{r}}); err != nil {
		t.Fatal(err)
	}
}

// An agent that was never told anything (new DPU, wiped state_dir) leaves the
// DPU alone: generation 0 is "unknown", not "empty"; it waits for the
// conductor's push (agent/hello).
func TestNoDesiredStateTouchesNothing(t *testing.T) {
	r := &agenttest.Reconciler{}
	st, _ := state.NewStore(t.TempDir())
	a, err := agent.New(agent.Options{NodeUUID: node, Store: st, Reconcilers: []agent.Reconciler{r}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = a.Run(ctx) }()
	time.Sleep(150 * time.Millisecond) // start + several periods
	cancel()
	if r.Calls() != 0 {
		t.Fatalf("reconciled %d times with no desired state", r.Calls())
	}
	if _, err := call(t, a, "apply_state", stateJSON(0, "", "")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("generation 0 accepted: %v", err)
	}

}

// A single-item edit reports its own component's failure only: plugging a
// NIC does not fail because SPDK is down (that failure stays in the status).
func TestEditReportsOnlyItsComponent(t *testing.T) {
	stor := &agenttest.Reconciler{NameValue: agent.ComponentStorage}
	stor.Set(fmt.Errorf("spdk down: %w", errdefs.ErrUnavailable), nil, nil)
	net := &agenttest.Reconciler{NameValue: agent.ComponentNetwork}
	a := startAgent(t, t.TempDir(), agent.Options{Reconcilers: []agent.Reconciler{stor, net}})
	if _, err := call(t, a, "plug_vif", `{"vif":`+vif1+`}`); err != nil {
		t.Fatalf("plug_vif failed because of storage: %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(a.Status(context.Background()).LastError, "spdk down") }) // kept in the status
	_, err := call(t, a, "attach_volume", `{"volume":`+bootVol+`}`)
	if agent.ExceptionClass(err) != "TemporaryFailure" || !strings.Contains(err.Error(), "storage: spdk down") {
		t.Fatalf("attach_volume: %v", err)
	}
	// apply_state does not wait: it admits and returns; the failure is in
	// the observed state, per component.
	res, err := call(t, a, "apply_state", stateJSON(9, bootVol, vif1))
	if err != nil {
		t.Fatalf("apply_state: %v", err)
	}
	if v := res.(agent.View); v.Generation != 9 {
		t.Fatalf("apply_state answered %+v", v)
	}
	waitFor(t, func() bool {
		o := a.State(context.Background()).Observed
		return o.Generation == 9 && strings.Contains(o.Components[agent.ComponentStorage].LastError, "spdk down") &&
			o.Components[agent.ComponentNetwork].LastError == ""
	})
}

// admitting is a reconciler that checks the config drive at admission, as
// the storage reconciler does.
type admitting struct {
	agenttest.Reconciler
	admitted int
}

func (r *admitting) Admit(_ context.Context, d *nodestate.Desired) error {
	if d.ConfigDrive != nil && d.ConfigDrive.Data == "bad" {
		return fmt.Errorf("%w: bad image", errdefs.ErrInvalidArgument)
	}
	r.admitted++
	return nil
}

func TestConfigDriveDataNeverPersisted(t *testing.T) {
	dir := t.TempDir()
	st, err := state.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &admitting{}
	a, err := agent.New(agent.Options{NodeUUID: node, Store: st, Reconcilers: []agent.Reconciler{r}, SFBase: 1})
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("ab", 32)
	withCD := func(gen int, data string) string {
		return fmt.Sprintf(`{"state":{"generation":%d,"volumes":[%s],"vifs":[],"config_drive":{"sha256":%q,"data":%q}}}`, gen, dataVol, sha, data)
	}
	if _, err := call(t, a, "apply_state", withCD(1, "H4sIAAAAAAAA")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(st.Path())
	if err != nil || strings.Contains(string(raw), "H4sI") || !strings.Contains(string(raw), sha) {
		t.Fatalf("persisted state: %s %v", raw, err)
	}
	// The conductor retrying the same generation with the data is no conflict.
	if _, err := call(t, a, "apply_state", withCD(1, "H4sIAAAAAAAA")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	// A refused image changes nothing.
	if _, err := call(t, a, "apply_state", withCD(2, "bad")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad image: %v", err)
	}
	if a.Desired().Generation != 1 || r.admitted != 1 {
		t.Fatalf("generation %d, admitted %d", a.Desired().Generation, r.admitted)
	}
}
