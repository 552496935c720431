//go:build functional

package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

func newClient(t *testing.T) *rpcapi.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rpcapi.NewClient(ctx, rpcapi.ClientConfig{URL: broker.URL(), Rabbit: fastRetry(), Logger: zaptest.NewLogger(t), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestGoClientToPythonServer(t *testing.T) {
	t.Parallel()
	ps := startPyServer(t, "py-node")
	c := newClient(t)
	ctx := context.Background()
	tgt := rpcapi.Target{Topic: topic, Server: "py-node", Version: "1.0"}
	opts := rpcapi.CallOptions{Timeout: 10 * time.Second, Context: map[string]any{"request_id": "req-go"}}

	res, err := c.Call(ctx, tgt, "echo", map[string]any{"n": json.RawMessage("1152921504606846976"), "nested": map[string]any{"a": []int{1, 2}}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Args    map[string]json.RawMessage
		Context map[string]any
	}
	if err := json.Unmarshal(res, &echo); err != nil {
		t.Fatal(err)
	}
	if string(echo.Args["n"]) != "1152921504606846976" || echo.Context["request_id"] != "req-go" {
		t.Errorf("echo from Python: %s", res)
	}

	res, err = c.Call(ctx, tgt, "get_status", nil, opts)
	if err != nil || !json.Valid(res) {
		t.Fatalf("get_status: %s, %v", res, err)
	}

	if err := c.Cast(ctx, tgt, "remember", map[string]any{"item": "go-cast"}, opts); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ps.got:
		if got != `"go-cast"` {
			t.Errorf("cast arrived as %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cast never reached the Python server")
	}

	// a Python ValueError arrives as *RemoteError{Class: "ValueError"}
	_, err = c.Call(ctx, tgt, "boom", map[string]any{"message": "bad disk"}, opts)
	var re *rpcapi.RemoteError
	if !errors.As(err, &re) || re.Class != "ValueError" || re.Module != "builtins" || re.Message != "bad disk" || len(re.Traceback) == 0 {
		t.Errorf("remote ValueError: %#v (%v)", re, err)
	}
	// oslo's own dispatcher errors keep their class
	_, err = c.Call(ctx, tgt, "nosuch", nil, opts)
	if !rpcapi.IsRemote(err, "NoSuchMethod") {
		t.Errorf("nosuch: %v", err)
	}
	// at-least-once to nobody fails through the broker's mandatory return:
	// the call timeout is far beyond the hang watchdog, so returning at all
	// cannot be the timeout. A plain call times out.
	poll.Returns(t, "at-least-once call to nobody", func() {
		_, err = c.Call(ctx, rpcapi.Target{Topic: topic, Server: "nobody"}, "echo", nil, rpcapi.CallOptions{Timeout: 10 * time.Minute, AtLeastOnce: true})
	})
	if !errors.Is(err, rpcapi.ErrMessageUndeliverable) {
		t.Errorf("at-least-once: %v, want ErrMessageUndeliverable", err)
	}
	_, err = c.Call(ctx, rpcapi.Target{Topic: topic, Server: "nobody"}, "echo", nil, rpcapi.CallOptions{Timeout: 500 * time.Millisecond})
	if !errors.Is(err, rpcapi.ErrMessagingTimeout) {
		t.Errorf("call to nobody: %v", err)
	}
}

// The Go client against the Go server: heartbeats, fanout and remote errors.
func TestGoClientToGoServer(t *testing.T) {
	t.Parallel()
	casts := make(chan string, 100)
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-go"}, Dispatcher: testDispatcher(casts), Classify: agentClassify})
	c := newClient(t)
	ctx := context.Background()
	tgt := rpcapi.Target{Topic: topic, Server: "node-go"}

	res, err := c.Call(ctx, tgt, "sleep", map[string]any{"seconds": 2.5}, rpcapi.CallOptions{Timeout: 10 * time.Second, CallMonitorTimeout: 2 * time.Second})
	if err != nil || string(res) != `"slept"` {
		t.Fatalf("monitored call: %s %v", res, err)
	}
	_, err = c.Call(ctx, tgt, "invalid", nil, rpcapi.CallOptions{})
	if !rpcapi.IsRemote(err, "InvalidParameterValue") {
		t.Errorf("invalid: %v", err)
	}
	res, err = c.Call(ctx, tgt, rpcapi.PingMethod, nil, rpcapi.CallOptions{})
	if err != nil || string(res) != `"pong"` {
		t.Errorf("ping: %s %v", res, err)
	}
	if err := c.Cast(ctx, rpcapi.Target{Topic: topic, Fanout: true}, "remember", map[string]any{"item": "fanout-go"}, rpcapi.CallOptions{}); err != nil {
		t.Fatal(err)
	}
	expectCast(t, casts, "fanout-go")
	if _, err := c.Call(ctx, rpcapi.Target{Topic: topic, Fanout: true}, "echo", nil, rpcapi.CallOptions{}); err == nil {
		t.Error("call on a fanout target must fail")
	}
}
