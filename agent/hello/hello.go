// Package hello announces the agent to the conductors after it (re)connects
// to the broker, so that a conductor pushes the node's desired state when
// the agent missed casts (DPU down, broker restarted): the catch-up after a
// reboot without any Ironic API credential on the DPU.
//
// The announcement is one small JSON message on the control exchange with
// routing key ironic-dpu-conductor.hello.<node uuid>. The broker
// authenticates it: a DPU's broker user may publish that key on that
// exchange and no other (see broker-acl), so the conductor takes the node
// from the routing key and never from the body.
package hello

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Topic is the routing key prefix of announcements; the key is
// Topic + "." + node uuid (lower case). The conductor side binds
// Topic + ".*" (ironic_dpu/hello.py).
const Topic = "ironic-dpu-conductor.hello"

// Version is the version of the message format: a conductor accepts the
// same major and ignores fields it does not know.
const Version = "1.0"

// Reasons an announcement is sent.
const (
	ReasonStart     = "start"
	ReasonReconnect = "reconnect"
)

// Message is the body of an announcement.
type Message struct {
	Version string `json:"version"`
	// NodeUUID is informational (logs): the conductor takes the node from
	// the routing key, which only this node's broker user may publish.
	NodeUUID string `json:"node_uuid"`
	// Generation is the desired generation the agent holds (persisted);
	// 0 means none. The conductor pushes when it recorded a newer one.
	Generation    int64  `json:"generation"`
	RPCAPIVersion string `json:"rpc_api_version"`
	AgentVersion  string `json:"agent_version"`
	Reason        string `json:"reason"`
}

// RoutingKey is the key node announces itself with.
func RoutingKey(node string) string { return Topic + "." + strings.ToLower(node) }

// Publisher sends one message; rpcapi.Server does, on its live connection.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, body []byte) error
}

// Options wires an Announcer.
type Options struct {
	Publisher Publisher
	// Exchange is the control exchange ([agent] exchange).
	Exchange string
	NodeUUID string
	// Generation returns the generation the agent holds now.
	Generation    func() int64
	RPCAPIVersion string
	AgentVersion  string
	// RetryBase is the first delay after a failed publish (default 1s); it
	// doubles up to RetryMax (default 60s), jittered. A conductor that has
	// not declared its queue yet (it is starting, or the broker restarted)
	// makes the publish undeliverable until it has.
	RetryBase, RetryMax time.Duration
	// PublishTimeout bounds one publish and its confirm (default 10s).
	PublishTimeout time.Duration
	Logger         *zap.Logger
}

// Announcer publishes an announcement after each connection: Connected
// asks for one, Run sends it.
type Announcer struct {
	o    Options
	want chan struct{}
}

// New makes an Announcer; nothing is sent before Run.
func New(o Options) *Announcer {
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = max(60*time.Second, o.RetryBase)
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Announcer{o: o, want: make(chan struct{}, 1)}
}

// Connected asks for an announcement; it never blocks (the RPC server calls
// it from its connection loop). Every connection counts: the agent cannot
// tell whether casts were lost while it was away (its queue may have been
// dropped with a broker restart, or the DPU was off).
func (a *Announcer) Connected() {
	select {
	case a.want <- struct{}{}:
	default: // one is pending already; it reads the generation when it runs
	}
}

// Run sends the requested announcements until ctx is done: the first as
// "start", later ones as "reconnect". A failed one is retried with backoff
// until it is delivered, or replaced by the next connection's.
func (a *Announcer) Run(ctx context.Context) {
	reason := ReasonStart
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.want:
		}
		a.announce(ctx, reason)
		reason = ReasonReconnect
	}
}

// announce publishes until delivered or ctx is done. A new connection while
// waiting to retry retries at once (the body is rebuilt each attempt, so it
// carries the generation held then).
func (a *Announcer) announce(ctx context.Context, reason string) {
	key := RoutingKey(a.o.NodeUUID)
	delay := a.o.RetryBase
	for attempt := 0; ; attempt++ {
		gen := a.o.Generation()
		body, err := json.Marshal(Message{Version: Version, NodeUUID: strings.ToLower(a.o.NodeUUID), Generation: gen,
			RPCAPIVersion: a.o.RPCAPIVersion, AgentVersion: a.o.AgentVersion, Reason: reason})
		if err != nil {
			a.o.Logger.Error("cannot encode the announcement", zap.Error(err))
			return
		}
		pctx, cancel := context.WithTimeout(ctx, a.o.PublishTimeout)
		err = a.o.Publisher.Publish(pctx, a.o.Exchange, key, body)
		cancel()
		if err == nil {
			a.o.Logger.Info("announced to the conductors", zap.String("exchange", a.o.Exchange), zap.String("routing_key", key),
				zap.Int64("generation", gen), zap.String("reason", reason), zap.Int("attempt", attempt))
			return
		}
		if ctx.Err() != nil {
			return
		}
		// The first failure says why; repeats (a conductor without
		// announcement support never binds the key) stay quiet.
		lvl := a.o.Logger.Debug
		if attempt == 0 {
			lvl = a.o.Logger.Warn
		}
		lvl("announcement not delivered; retrying", zap.String("exchange", a.o.Exchange), zap.String("routing_key", key),
			zap.Error(err), zap.Duration("retry_in", delay))
		t := time.NewTimer(jitter(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.want: // reconnected meanwhile: try now
			t.Stop()
		case <-t.C:
		}
		delay = min(delay*2, a.o.RetryMax)
	}
}

// jitter is d ±20%, so a fleet of DPUs rebooted together does not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
