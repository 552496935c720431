//go:build functional

package rpc

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// Not parallel: a memory alarm blocks every publisher on the broker. A reply
// published while the broker blocks us is held, not lost, and goes out once
// the alarm clears; the server sees connection.blocked and stays up.
func TestConnectionBlocked(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("wait", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		started <- struct{}{}
		<-release
		return "released", nil
	})
	core, logs := observer.New(zapcore.InfoLevel)
	srv := startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-blocked"}, Dispatcher: d,
		Logger: zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))})
	c := newClient(t)
	type res struct {
		raw json.RawMessage
		err error
	}
	got := make(chan res, 1)
	go func() {
		r, err := c.Call(context.Background(), rpcapi.Target{Topic: topic, Server: "node-blocked"}, "wait", nil, rpcapi.CallOptions{Timeout: 30 * time.Second})
		got <- res{r, err}
	}()
	<-started
	ctx := context.Background()
	if _, err := broker.Ctl(ctx, "set_vm_memory_high_watermark", "0"); err != nil {
		t.Fatal(err)
	}
	unblocked := false
	unblock := func() {
		if !unblocked {
			unblocked = true
			if _, err := broker.Ctl(ctx, "set_vm_memory_high_watermark", "0.4"); err != nil {
				t.Error(err)
			}
		}
	}
	defer unblock()
	close(release)
	waitFor(t, 10*time.Second, "connection.blocked", func() bool {
		return logs.FilterMessageSnippet("blocked state changed").FilterField(zap.Bool("blocked", true)).Len() > 0
	})
	select {
	case r := <-got:
		t.Fatalf("reply went through a blocked broker: %s %v", r.raw, r.err)
	case <-time.After(time.Second):
	}
	if !srv.Connected() {
		t.Error("server dropped its connection while blocked")
	}
	unblock()
	select {
	case r := <-got:
		if r.err != nil || string(r.raw) != `"released"` {
			t.Errorf("after unblock: %s %v", r.raw, r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("reply not delivered after the alarm cleared")
	}
}
