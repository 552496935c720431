package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
	code, body := get(t, httpapi.Handler(fixed(st)), "/healthz")
	if code != 200 || !strings.Contains(body, `"generation":7`) {
		t.Fatalf("healthz %d %s", code, body)
	}
	st.Healthy = false
	st.Components["network"] = agent.Component{Healthy: false, Detail: "ovsdb down"}
	code, _ = get(t, httpapi.Handler(fixed(st)), "/healthz")
	if code != 503 {
		t.Fatalf("unhealthy healthz answered %d", code)
	}
	_, m := get(t, httpapi.Handler(fixed(st)), "/metrics")
	for _, want := range []string{
		"ironic_dpu_agent_desired_generation 7",
		"ironic_dpu_agent_reconcile_failures_total 1",
		`ironic_dpu_agent_component_healthy{component="network"} 0`,
		`ironic_dpu_agent_component_healthy{component="rpc"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
}
