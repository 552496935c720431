// Package httpapi serves the agent's health and metrics over HTTP for
// systemd/Kubernetes-style probes and Prometheus scraping.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
)

// StatusSource is what the endpoints read (the agent).
type StatusSource interface {
	Status(ctx context.Context) agent.Status
}

// Handler returns the mux: /healthz (200 healthy, 503 otherwise, with the
// status JSON) and /metrics (Prometheus text format).
func Handler(src StatusSource) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := src.Status(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !st.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		st := src.Status(r.Context())
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		metric := func(name, help, typ string, v any) {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
		}
		metric("ironic_dpu_agent_desired_generation", "Generation of the desired state the agent holds.", "gauge", st.Generation)
		metric("ironic_dpu_agent_reconciles_total", "Reconciles run since start.", "counter", st.Reconciles)
		metric("ironic_dpu_agent_reconcile_failures_total", "Reconciles that left something undone.", "counter", st.Failures)
		metric("ironic_dpu_agent_last_reconcile_seconds", "Duration of the last reconcile.", "gauge", st.LastDuration)
		fmt.Fprint(w, "# HELP ironic_dpu_agent_component_healthy 1 when the component (rpc, storage, network) is reachable.\n# TYPE ironic_dpu_agent_component_healthy gauge\n")
		names := make([]string, 0, len(st.Components))
		for n := range st.Components {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := 0
			if st.Components[n].Healthy {
				v = 1
			}
			fmt.Fprintf(w, "ironic_dpu_agent_component_healthy{component=%q} %d\n", n, v)
		}
	})
	return mux
}

// Serve listens on addr until ctx is done.
func Serve(ctx context.Context, addr string, src StatusSource, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health_listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: Handler(src), ReadHeaderTimeout: 5 * time.Second}
	log.Info("health and metrics endpoint listening", zap.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}
