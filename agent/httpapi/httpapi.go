// Package httpapi serves the agent's health and metrics over HTTP for
// systemd/Kubernetes-style probes and Prometheus scraping.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
)

// StatusSource is what the endpoints read (the agent).
type StatusSource interface {
	Status(ctx context.Context) agent.Status
}

// statusTimeout bounds the Status call of one scrape (Status only probes
// before the first background health probe).
const statusTimeout = 5 * time.Second

// Metrics is one agent's Prometheus registry: the status gauges and
// counters (read from the StatusSource at scrape time), the RPC latency
// histogram, and the Go runtime and process collectors. Each agent builds
// its own; nothing is registered in client_golang's global registry.
type Metrics struct {
	src     StatusSource
	reg     *prometheus.Registry
	rpc     *prometheus.HistogramVec
	methods map[string]bool
}

// NewMetrics builds the registry. methods are the RPC method names that get
// their own histogram label; any other name a caller sends is counted as
// "other", so a flood of made-up names cannot grow the series without bound.
func NewMetrics(src StatusSource, methods []string) *Metrics {
	m := &Metrics{src: src, reg: prometheus.NewRegistry(), methods: map[string]bool{}}
	for _, n := range methods {
		m.methods[n] = true
	}
	m.rpc = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ironic_dpu_agent_rpc_duration_seconds",
		Help:    "Time from receiving an RPC request to its result, by method and outcome (ok or error).",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60},
	}, []string{"method", "outcome"})
	m.reg.MustRegister(statusCollector{src}, m.rpc,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRPC records one handled request (rpcapi.ServerConfig.Observe).
func (m *Metrics) ObserveRPC(method string, took time.Duration, err error) {
	if !m.methods[method] {
		method = "other"
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.rpc.WithLabelValues(method, outcome).Observe(took.Seconds())
}

// Registry is the registry /metrics serves (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var (
	descGeneration = prometheus.NewDesc("ironic_dpu_agent_desired_generation", "Generation of the desired state the agent holds.", nil, nil)
	descReconciles = prometheus.NewDesc("ironic_dpu_agent_reconciles_total", "Reconciles run since start.", nil, nil)
	descFailures   = prometheus.NewDesc("ironic_dpu_agent_reconcile_failures_total", "Reconciles that left something undone.", nil, nil)
	descLastDur    = prometheus.NewDesc("ironic_dpu_agent_last_reconcile_seconds", "Duration of the last reconcile.", nil, nil)
	descHealthy    = prometheus.NewDesc("ironic_dpu_agent_component_healthy", "1 when the component (rpc, storage, network) is reachable.", []string{"component"}, nil)
)

// statusCollector turns one Status into metrics at scrape time, so the
// values are never stale and the agent needs no metrics bookkeeping.
type statusCollector struct{ src StatusSource }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGeneration, descReconciles, descFailures, descLastDur, descHealthy} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st := c.src.Status(ctx)
	ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(st.Generation))
	ch <- prometheus.MustNewConstMetric(descReconciles, prometheus.CounterValue, float64(st.Reconciles))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(st.Failures))
	ch <- prometheus.MustNewConstMetric(descLastDur, prometheus.GaugeValue, st.LastDuration)
	for name, comp := range st.Components {
		v := 0.0
		if comp.Healthy {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, v, name)
	}
}

// Handler returns the mux: /healthz (200 healthy, 503 otherwise, with the
// status JSON) and /metrics (Prometheus exposition of m's registry).
func Handler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := m.src.Status(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !st.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}

// Serve listens on addr until ctx is done.
func Serve(ctx context.Context, addr string, m *Metrics, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health_listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: Handler(m), ReadHeaderTimeout: 5 * time.Second}
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
