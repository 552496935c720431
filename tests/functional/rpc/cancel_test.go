//go:build functional

package rpc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// The broker cancels a consumer when its queue goes away (deleted by an
// operator, or its cluster node failed) while the connection stays up. The
// server must then redeclare and consume again, like oslo's reconnect on
// ConsumerCancelled, instead of going deaf while reporting connected.
func TestConsumerCancelledByBrokerRecovers(t *testing.T) {
	var connects atomic.Int32
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(ctx context.Context, req *rpcapi.Request) (any, error) { return "ok", nil })
	core, logs := observer.New(zap.InfoLevel)
	srv := startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-cancelled"}, Dispatcher: d,
		OnConnect: func() { connects.Add(1) }, Logger: zap.New(core)})
	c := newClient(t)
	tgt := rpcapi.Target{Topic: topic, Server: "node-cancelled"}
	if _, err := c.Call(context.Background(), tgt, "echo", map[string]any{}, rpcapi.CallOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("call before the cancel: %v", err)
	}

	p := newRawPeer(t)
	if _, err := p.ch.QueueDelete(srv.ServerQueue(), false, false, false); err != nil {
		t.Fatalf("delete the server queue: %v", err)
	}
	waitFor(t, 20*time.Second, "re-consume after the broker cancelled the consumer", func() bool {
		if connects.Load() < 2 || !srv.Connected() {
			return false
		}
		_, err := c.Call(context.Background(), tgt, "echo", map[string]any{}, rpcapi.CallOptions{Timeout: time.Second, AtLeastOnce: true})
		return err == nil
	})
	// The log says which queue lost its consumer and on which broker.
	cancelled := logs.FilterMessage("broker cancelled a consumer; reconnecting").All()
	if len(cancelled) != 1 {
		t.Fatalf("%d 'broker cancelled a consumer' lines, want 1", len(cancelled))
	}
	if f := cancelled[0].ContextMap(); f["queue"] != srv.ServerQueue() || f["broker"] != broker.Addr() {
		t.Fatalf("cancelled consumer logged with %v, want queue %s on %s", f, srv.ServerQueue(), broker.Addr())
	}
}
