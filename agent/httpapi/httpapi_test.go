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
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
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
	code, body := get(t, httpapi.Handler(httpapi.NewMetrics(fixed(st), nil, nil), nil), "/healthz")
	if code != 200 || !strings.Contains(body, `"generation":7`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	st.Healthy = false
	st.Components["network"] = agent.Component{Healthy: false, Detail: "ovsdb down"}
	code, _ = get(t, httpapi.Handler(httpapi.NewMetrics(fixed(st), nil, nil), nil), "/healthz")
	if code != 503 {
		t.Fatalf("unhealthy healthz answered %d", code)
	}
	_, m := get(t, httpapi.Handler(httpapi.NewMetrics(fixed(st), nil, nil), nil), "/metrics")
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
	problems, err := testutil.GatherAndLint(httpapi.NewMetrics(fixed(st), nil, nil).Registry())
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

// Each Metrics has its own registry (two agents in one process, or tests in
// parallel, never collide), and made-up method names share one series.
func TestRPCHistogramPerRegistry(t *testing.T) {
	a := httpapi.NewMetrics(fixed{}, []string{"apply_state"}, nil)
	b := httpapi.NewMetrics(fixed{}, []string{"apply_state"}, nil)
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
	_, body := get(t, httpapi.Handler(a, nil), "/metrics")
	for _, s := range []string{strings.TrimSpace(want), `ironic_dpu_agent_rpc_duration_seconds_bucket{method="apply_state",outcome="error",le="1"} 0`,
		`ironic_dpu_agent_rpc_duration_seconds_count{method="other",outcome="ok"} 100`} {
		if !strings.Contains(body, s) {
			t.Fatalf("metrics lack %q:\n%s", s, body)
		}
	}
}

type link struct {
	up         bool
	broker     string
	reconnects uint64
}

func (l link) Connected() bool    { return l.up }
func (l link) Broker() string     { return l.broker }
func (l link) Reconnects() uint64 { return l.reconnects }

// /livez answers for the loops, not the dependencies: with the broker down
// (readiness 503) it is 200; with a loop stuck it is 503 naming the loop.
// /readyz is today's /healthz, which stays for older probes.
func TestLivezIsSeparateFromReadyz(t *testing.T) {
	st := agent.Status{Healthy: false, Components: map[string]agent.Component{"rpc": {Healthy: false, Detail: "not connected to the message broker"}}}
	mon := liveness.New(time.Second)
	stuck := mon.Register("reconcile/storage")
	fresh := mon.Register("rpc/server")
	h := httpapi.Handler(httpapi.NewMetrics(fixed(st), nil, nil), mon)
	for _, p := range []string{"/readyz", "/healthz"} {
		if code, body := get(t, h, p); code != 503 || !strings.Contains(body, "message broker") {
			t.Fatalf("%s with the broker down: %d %s", p, code, body)
		}
	}
	code, body := get(t, h, "/livez")
	if code != 200 || !strings.Contains(body, `"alive":true`) || !strings.Contains(body, "rpc/server") {
		t.Fatalf("livez with the broker down: %d %s", code, body)
	}
	time.Sleep(1100 * time.Millisecond)
	fresh.Beat()
	code, body = get(t, h, "/livez")
	if code != 503 || !strings.Contains(body, `"stuck":{"reconcile/storage":`) || strings.Contains(body, `"rpc/server":`) {
		t.Fatalf("livez with storage stuck: %d %s", code, body)
	}
	stuck.Beat()
	if code, _ := get(t, h, "/livez"); code != 200 {
		t.Fatalf("livez after recovery: %d", code)
	}
}

func TestBrokerMetrics(t *testing.T) {
	l := &link{}
	m := httpapi.NewMetrics(fixed{}, nil, l)
	_, body := get(t, httpapi.Handler(m, nil), "/metrics")
	if strings.Contains(body, "ironic_dpu_agent_rpc_broker_connected{") || !strings.Contains(body, "ironic_dpu_agent_rpc_reconnects_total 0") {
		t.Fatalf("before any connection:\n%s", body)
	}
	*l = link{up: true, broker: "10.0.0.2:5672", reconnects: 3}
	_, body = get(t, httpapi.Handler(m, nil), "/metrics")
	for _, want := range []string{`ironic_dpu_agent_rpc_broker_connected{broker="10.0.0.2:5672"} 1`, "ironic_dpu_agent_rpc_reconnects_total 3",
		"# TYPE ironic_dpu_agent_rpc_reconnects_total counter"} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	l.up = false
	if _, body = get(t, httpapi.Handler(m, nil), "/metrics"); !strings.Contains(body, `ironic_dpu_agent_rpc_broker_connected{broker="10.0.0.2:5672"} 0`) {
		t.Fatalf("reconnecting:\n%s", body)
	}
	if problems, err := testutil.GatherAndLint(m.Registry()); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}
