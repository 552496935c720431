// Package httpapi serves the agent's probes and metrics over HTTP:
// /livez (the agent's loops are alive; restart it when not), /readyz (the
// broker, SPDK and OVSDB are reachable; /healthz is the same, kept for
// probes written against older agents) and /metrics (Prometheus).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
)

// StatusSource is what /readyz and the status metrics read (the agent).
type StatusSource interface {
	Status(ctx context.Context) agent.Status
}

// LivenessSource tells whether the daemon's loops are alive (a
// liveness.Monitor): Check is nil, or an error naming the stuck loops.
type LivenessSource interface {
	Check() error
	Names() []string
}

// BrokerSource is the RPC server's connection (an rpcapi.Link).
type BrokerSource interface {
	Connected() bool
	// Broker is host:port of the current (or last) broker, "" before any.
	Broker() string
	Reconnects() uint64
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
// broker, when set, adds the current broker and the reconnect counter.
func NewMetrics(src StatusSource, methods []string, broker BrokerSource) *Metrics {
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
	if broker != nil {
		m.reg.MustRegister(brokerCollector{broker})
	}
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

var (
	descBroker     = prometheus.NewDesc("ironic_dpu_agent_rpc_broker_connected", "The broker (host:port) the RPC server consumes from: 1 while connected, 0 while it reconnects (the last one). Absent before the first connection.", []string{"broker"}, nil)
	descReconnects = prometheus.NewDesc("ironic_dpu_agent_rpc_reconnects_total", "Broker connections made by the RPC server after its first one.", nil, nil)
)

// brokerCollector reads the RPC link at scrape time.
type brokerCollector struct{ src BrokerSource }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBroker
	ch <- descReconnects
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	if b := c.src.Broker(); b != "" {
		v := 0.0
		if c.src.Connected() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descBroker, prometheus.GaugeValue, v, b)
	}
	ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(c.src.Reconnects()))
}

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

// Liveness is /livez's body.
type Liveness struct {
	Alive bool     `json:"alive"`
	Loops []string `json:"loops"`
	// Stuck are the loops past the bound, with seconds since their last beat.
	Stuck map[string]float64 `json:"stuck,omitempty"`
	Error string             `json:"error,omitempty"`
}

// Handler returns the mux: /livez (200 while live's loops are alive, 503
// naming the stuck ones), /readyz and its older name /healthz (200 when the
// broker, SPDK and OVSDB are reachable, 503 otherwise, with the status
// JSON) and /metrics (Prometheus exposition of m's registry). A nil live
// serves /livez as alive: the process answers.
func Handler(m *Metrics, live LivenessSource) http.Handler {
	mux := http.NewServeMux()
	ready := func(w http.ResponseWriter, r *http.Request) {
		st := m.src.Status(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !st.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	}
	mux.HandleFunc("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", ready)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		body := Liveness{Alive: true, Loops: []string{}}
		if live != nil {
			body.Loops = live.Names()
			if err := live.Check(); err != nil {
				body.Alive, body.Error = false, err.Error()
				var se *liveness.StuckError
				if errors.As(err, &se) {
					body.Stuck = map[string]float64{}
					for _, l := range se.Loops {
						body.Stuck[l.Name] = l.Since.Seconds()
					}
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if !body.Alive {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}

// Listen opens the health_listen socket (before the agent says it is ready).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health_listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx is done; it closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *zap.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Info("probes and metrics endpoint listening", zap.String("addr", ln.Addr().String()))
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
