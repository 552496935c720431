//go:build functional

package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// deadHost is a loopback port nobody listens on.
func deadHost(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// The first host of a multi-host URL is down: the server fails over to the
// second; connection_name identifies the agent; an in-flight call still gets
// its reply during a graceful shutdown.
func TestFailoverConnectionNameAndGracefulStop(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("slow", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		started <- struct{}{}
		time.Sleep(time.Second)
		return "finished", nil
	})
	url := "rabbit://guest:secret-x@" + deadHost(t) + ",guest:guest@" + broker.Addr() + "/"
	core, logs := observer.New(zapcore.DebugLevel)
	s, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: url, Rabbit: fastRetry(), Logger: zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())),
		Target: rpcapi.Target{Topic: topic, Server: "node-failover"}, Dispatcher: d})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 15*time.Second, "failover connect", s.Connected)

	out, err := broker.Ctl(context.Background(), "list_connections", "client_properties")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ironic-dpu-agent:node-failover") {
		t.Errorf("connection_name not set: %s", out)
	}

	c := newClient(t)
	type res struct {
		raw json.RawMessage
		err error
	}
	got := make(chan res, 1)
	go func() {
		r, err := c.Call(context.Background(), rpcapi.Target{Topic: topic, Server: "node-failover"}, "slow", nil, rpcapi.CallOptions{Timeout: 10 * time.Second})
		got <- res{r, err}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("slow call never started")
	}
	cancel() // shutdown while the call is in flight
	r := <-got
	if r.err != nil || string(r.raw) != `"finished"` {
		t.Errorf("in-flight call during shutdown: %s %v", r.raw, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	if s.Connected() {
		t.Error("still connected after Run returned")
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged")
	}
	for _, e := range logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, "secret-x") {
			t.Errorf("password logged: %s", line)
		}
	}
}

// ListenShared consumes <topic>: a Python cast with no server reaches it.
func TestSharedTopicQueue(t *testing.T) {
	t.Parallel()
	casts := make(chan string, 100)
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Topic: "shared-topic", Server: "node-shared"}, ListenShared: true, Dispatcher: testDispatcher(casts)})
	res := runPyClient(t, map[string]any{"topic": "shared-topic", "ops": []map[string]any{
		{"op": "cast", "method": "remember", "args": map[string]any{"item": "to-any"}},
		{"op": "call", "method": "oslo_rpc_server_ping"},
	}})
	if len(res) != 2 || !res[0].OK || !res[1].OK || string(res[1].Result) != `"pong"` {
		t.Fatalf("%+v", res)
	}
	expectCast(t, casts, "to-any")
}
