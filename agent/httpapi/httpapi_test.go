package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/httpapi"
)

type fixed agent.Status

func (f fixed) Status(context.Context) agent.Status { return agent.Status(f) }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthzAndMetrics(t *testing.T) {
	st := agent.Status{NodeUUID: "n", Generation: 7, Reconciles: 3, Failures: 1, Healthy: true,
		Components: map[string]agent.Component{"rpc": {Healthy: true}, "storage": {Healthy: true}}}
	code, body := get(t, httpapi.Handler(httpapi.NewMetrics(fixed(st), nil)), "/healthz")
	if code != 200 || !strings.Contains(body, `"generation":7`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	st.Healthy = false
	st.Components["network"] = agent.Component{Healthy: false, Detail: "ovsdb down"}
	code, _ = get(t, httpapi.Handler(httpapi.NewMetrics(fixed(st), nil)), "/healthz")
	if code != 503 {
		t.Fatalf("unhealthy healthz answered %d", code)
	}
	_, m := get(t, httpapi.Handler(httpapi.NewMetrics(fixed(st), nil)), "/metrics")
	for _, want := range []string{
		"ironic_dpu_agent_desired_generation 7",
		"ironic_dpu_agent_reconciles_total 3",
		"ironic_dpu_agent_reconcile_failures_total 1",
		`ironic_dpu_agent_component_healthy{component="network"} 0`,
		`ironic_dpu_agent_component_healthy{component="rpc"} 1`,
		"# TYPE ironic_dpu_agent_reconciles_total counter",
		"go_goroutines ",
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	problems, err := testutil.GatherAndLint(httpapi.NewMetrics(fixed(st), nil).Registry())
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

// Each Metrics has its own registry (two agents in one process, or tests in
// parallel, never collide), and made-up method names share one series.
func TestRPCHistogramPerRegistry(t *testing.T) {
	a := httpapi.NewMetrics(fixed{}, []string{"apply_state"})
	b := httpapi.NewMetrics(fixed{}, []string{"apply_state"})
	a.ObserveRPC("apply_state", 20*time.Millisecond, nil)
	a.ObserveRPC("apply_state", 2*time.Second, errors.New("x"))
	for i := 0; i < 100; i++ {
		a.ObserveRPC(strings.Repeat("z", i), time.Millisecond, nil)
	}
	want := `
# HELP ironic_dpu_agent_rpc_duration_seconds Time from receiving an RPC request to its result, by method and outcome (ok or error).
# TYPE ironic_dpu_agent_rpc_duration_seconds histogram
`
	if n := testutil.CollectAndCount(b.Registry(), "ironic_dpu_agent_rpc_duration_seconds"); n != 0 {
		t.Fatalf("second registry sees %d series of the first", n)
	}
	if n := testutil.CollectAndCount(a.Registry(), "ironic_dpu_agent_rpc_duration_seconds"); n != 3 {
		t.Fatalf("%d rpc series, want 3 (apply_state ok, apply_state error, other ok)", n)
	}
	_, body := get(t, httpapi.Handler(a), "/metrics")
	for _, s := range []string{strings.TrimSpace(want), `ironic_dpu_agent_rpc_duration_seconds_bucket{method="apply_state",outcome="error",le="1"} 0`,
		`ironic_dpu_agent_rpc_duration_seconds_count{method="other",outcome="ok"} 100`} {
		if !strings.Contains(body, s) {
			t.Fatalf("metrics lack %q:\n%s", s, body)
		}
	}
}
