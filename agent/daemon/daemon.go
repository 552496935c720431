// Package daemon assembles the agent from its parts (driver, reconcilers,
// RPC server) and runs them until the context ends.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/hello"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/httpapi"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/sdnotify"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/version"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// OversizeHint ends the answer to a request over [agent] max_message_bytes:
// with the 1 MiB default, what exceeds it is almost always a config drive
// sent inline by a conductor older than RPC API 1.2 (or capped below it).
const OversizeHint = "[agent] max_message_bytes; a conductor before agent RPC API 1.2, or with rpc_version_cap below it, " +
	"sends the config drive inline in apply_state: raise max_message_bytes on the agent while such conductors remain, or upgrade them"

// Run serves the agent until ctx is done. Components that cannot reach their
// backend (SPDK, OVSDB, the broker) start anyway, report unhealthy and retry.
func Run(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log = log.With(zap.String("node_uuid", cfg.Default.NodeUUID))
	log.Info("starting ironic-dpu-agent", zap.String("version", version.String()),
		zap.String("driver", cfg.DPU.Driver), zap.Any("config", cfg.LogFields(rpcapi.RedactURL)))

	store, err := state.NewStore(cfg.Default.StateDir)
	if err != nil {
		return err
	}
	// Read the state before anything that could reach SPDK, OVSDB or the
	// broker is built: a file this agent cannot read (a newer agent's
	// schema) stops it here, with the DPU untouched.
	if _, err := store.Load(); err != nil {
		return fmt.Errorf("agent: load desired state: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Made before everything they connect: the components fire wake, the
	// agent serves it; the RPC server records link, the agent's health
	// reads it.
	wake := agent.NewWakeup()
	link := &rpcapi.Link{}
	// Every loop that must keep making progress beats here; /livez and the
	// systemd watchdog read the same verdict.
	live := liveness.New(cfg.Default.LivenessTimeout)
	comps, err := buildComponents(cfg, log, wake.Request)
	if err != nil {
		return err
	}
	defer comps.close()
	a, err := agent.New(agent.Options{
		NodeUUID:       cfg.Default.NodeUUID,
		DriverName:     cfg.DPU.Driver,
		Store:          store,
		Reconcilers:    comps.reconcilers,
		Wakeup:         wake,
		RPCHealth:      link.Health,
		Interval:       cfg.Default.ReconcileInterval,
		HealthInterval: cfg.Default.HealthInterval,
		RetryBase:      cfg.Default.RetryBase,
		ItemWait:       cfg.Default.ItemWait,
		SFBase:         cfg.Agent.SFBase,
		Limits:         nodestate.Limits{MaxVIFs: cfg.Agent.MaxVIFs, MaxVolumes: cfg.Agent.MaxVolumes},
		Quiescer:       comps.hold,
		Liveness:       live,
		Logger:         log,
	})
	if err != nil {
		return err
	}

	disp := rpcapi.NewDispatcher(version.RPCAPIVersion, "")
	methods := []string{rpcapi.PingMethod}
	for name, m := range a.Methods() {
		disp.Register(name, adapt(name, m))
		methods = append(methods, name)
	}
	metrics := httpapi.NewMetrics(a, methods, link)
	// After every connection the agent announces itself with the generation
	// it restored; a conductor that recorded a newer one pushes it (the
	// casts lost while the DPU was away). The broker authenticates the
	// node by the routing key its user may publish: no Ironic credentials.
	var srv *rpcapi.Server
	ann := hello.New(hello.Options{
		Publisher:     publisherFunc(func(ctx context.Context, x, k string, b []byte) error { return srv.Publish(ctx, x, k, b) }),
		Exchange:      cfg.Agent.Exchange,
		NodeUUID:      cfg.Default.NodeUUID,
		Generation:    func() int64 { return a.Desired().Generation },
		RPCAPIVersion: version.RPCAPIVersion,
		AgentVersion:  version.String(),
		RetryMax:      cfg.Default.ReconcileInterval,
		Logger:        log.Named("hello"),
	})
	srv, err = rpcapi.NewServer(rpcapi.ServerConfig{
		URL:          cfg.Default.TransportURL,
		Rabbit:       RabbitOptions(cfg.Rabbit),
		Target:       rpcapi.Target{Exchange: cfg.Agent.Exchange, Topic: cfg.Agent.Topic, Server: cfg.Default.NodeUUID},
		ListenShared: cfg.Agent.ListenSharedTopic,
		Dispatcher:   disp,
		Classify:     Classify,
		OnConnect:    func() { wake.Request(); ann.Connected() },
		Link:         link,
		Observe:      metrics.ObserveRPC,
		Beat:         live.Register("rpc/server"),
		// Since RPC API 1.2 the config drive comes by URL; an older
		// conductor still sends it inline: see the option's help.
		MaxMessageBytes: cfg.Agent.MaxMessageBytes,
		LimitHint:       OversizeHint,
		Logger:          log.Named("rpc"),
	})
	if err != nil {
		return err
	}
	var ln net.Listener
	if cfg.Default.HealthListen != "" {
		// bound before READY=1: a probe right after start finds it
		if ln, err = httpapi.Listen(cfg.Default.HealthListen); err != nil {
			return err
		}
	}
	notify, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("not notifying systemd", zap.Error(err))
	}
	defer func() { _ = notify.Close() }()
	watchdog, err := sdnotify.WatchdogTimeout()
	if err != nil {
		log.Warn("systemd watchdog off", zap.Error(err))
	}
	var wg sync.WaitGroup
	// Every goroutine of the daemon is started here and waited for below.
	for _, run := range comps.runs {
		wg.Go(func() { run(ctx) })
	}
	errc := make(chan error, 3)
	wg.Go(func() { ann.Run(ctx) })
	wg.Go(func() { errc <- a.Run(ctx) })
	wg.Go(func() { errc <- srv.Run(ctx) })
	if ln != nil {
		wg.Go(func() { errc <- httpapi.Serve(ctx, ln, httpapi.Handler(metrics, live), log) })
	}
	// Ready once it serves: the loops run and the probes answer. The broker
	// may still be down (the RPC server retries; /readyz says so).
	if err := notify.Notify("READY=1", "STATUS=serving"); err != nil {
		log.Warn("systemd notification failed", zap.Error(err))
	}
	if watchdog > 0 && notify != nil {
		log.Info("feeding the systemd watchdog while the loops are alive", zap.Duration("watchdog", watchdog),
			zap.Duration("liveness_timeout", live.Bound()), zap.Strings("loops", live.Names()))
		wg.Go(func() { sdnotify.Watchdog(ctx, notify, watchdog, live.Check, log) })
	}
	// The first to stop (normally on ctx cancel) stops the other.
	first := <-errc
	_ = notify.Notify("STOPPING=1", "STATUS=stopping")
	cancel()
	wg.Wait()
	close(errc)
	errs := []error{first}
	for e := range errc {
		errs = append(errs, e)
	}
	err = errors.Join(errs...)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("ironic-dpu-agent stopped", zap.Error(err))
	return err
}

// publisherFunc makes a function a hello.Publisher.
type publisherFunc func(ctx context.Context, exchange, key string, body []byte) error

func (f publisherFunc) Publish(ctx context.Context, exchange, key string, body []byte) error {
	return f(ctx, exchange, key, body)
}

// adapt serves m with the call's request ids and version in ctx: the
// admission logs and records them, its reconciles log them.
func adapt(name string, m agent.Method) rpcapi.Handler {
	return func(ctx context.Context, req *rpcapi.Request) (any, error) {
		args := req.Args
		if args == nil {
			args = map[string]json.RawMessage{}
		}
		rid, grid := rpcapi.RequestIDs(req.Context)
		ctx = agent.WithCaller(ctx, agent.Caller{Method: name, Version: req.Version, RequestID: rid, GlobalRequestID: grid})
		return m(ctx, args)
	}
}

// Classify is the single place an error becomes the exception the Python
// caller raises: dispatch errors keep oslo's classes, everything else maps to
// an ironic.common.exception class by its errdefs kind.
func Classify(err error) rpcapi.Failure {
	var de *rpcapi.DispatchError
	if errors.As(err, &de) {
		return de.Failure
	}
	return rpcapi.Failure{Class: agent.ExceptionClass(err), Module: agent.ExceptionModule, Message: err.Error()}
}
