//go:build functional

package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// agentClassify is the shape of the agent's mapping: errdefs kinds to ironic exceptions.
func agentClassify(err error) rpcapi.Failure {
	if errors.Is(err, errdefs.ErrInvalidArgument) {
		return rpcapi.Failure{Class: "InvalidParameterValue", Module: "ironic.common.exception", Message: err.Error()}
	}
	return rpcapi.DefaultClassify(err)
}

func testDispatcher(casts chan<- string) *rpcapi.Dispatcher {
	d := rpcapi.NewDispatcher("1.3", "")
	d.Register("echo", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		return map[string]any{"args": req.Args, "context": req.Context}, nil
	})
	d.Register("invalid", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		return nil, fmt.Errorf("volume_id must be a UUID: %w", errdefs.ErrInvalidArgument)
	})
	d.Register("sleep", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		var secs float64
		if err := json.Unmarshal(req.Args["seconds"], &secs); err != nil {
			return nil, fmt.Errorf("seconds: %w", errdefs.ErrInvalidArgument)
		}
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			return "slept", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	d.Register("remember", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		var item string
		_ = json.Unmarshal(req.Args["item"], &item)
		// fanout casts of parallel tests reach every server on the topic
		select {
		case casts <- item:
		default:
		}
		return nil, nil
	})
	d.Register("panics", func(ctx context.Context, req *rpcapi.Request) (any, error) { panic("handler bug") })
	d.Register("_private", func(ctx context.Context, req *rpcapi.Request) (any, error) { return "leaked", nil })
	return d
}

// expectCast waits for want, skipping fanout casts of parallel tests.
func expectCast(t *testing.T, casts <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-casts:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("cast %q never arrived", want)
		}
	}
}

func TestPythonClientToGoServer(t *testing.T) {
	t.Parallel()
	casts := make(chan string, 100)
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-py"}, Dispatcher: testDispatcher(casts), Classify: agentClassify})

	nested := map[string]any{"big": json.RawMessage("1152921504606846976"), "list": []any{1, "two", map[string]any{"three": []any{nil, true, 3.5}}}, "s": "ünïcode"}
	res := runPyClient(t, map[string]any{
		"allowed_remote_exmods": []string{"ironic.common.exception"},
		"ops": []map[string]any{
			{"op": "call", "server": "node-py", "method": "echo", "args": map[string]any{"payload": nested}, "context": map[string]any{"request_id": "req-1", "weird key": []int{1}}},
			{"op": "call", "server": "node-py", "method": "oslo_rpc_server_ping"},
			{"op": "call", "server": "node-py", "method": "nosuch"},
			{"op": "call", "server": "node-py", "method": "echo", "version": "2.0"},
			{"op": "call", "server": "node-py", "method": "invalid"},
			{"op": "call", "server": "node-py", "method": "_private"},
			{"op": "cast", "server": "node-py", "method": "remember", "args": map[string]any{"item": "cast-1"}},
			{"op": "fanout", "method": "remember", "args": map[string]any{"item": "fanout-1"}},
			{"op": "call", "server": "no-such-agent", "method": "echo", "at_least_once": true, "timeout": 10},
			{"op": "call", "server": "node-py", "method": "echo", "version": "1.3", "args": map[string]any{"after": "errors"}},
			{"op": "call", "server": "node-py", "method": "panics", "timeout": 10},
		},
	})
	if len(res) != 11 {
		t.Fatalf("got %d results: %+v", len(res), res)
	}

	// echo: nested JSON and 2**60 survive both directions exactly
	var echo struct {
		Args    map[string]json.RawMessage `json:"args"`
		Context map[string]any             `json:"context"`
	}
	if !res[0].OK {
		t.Fatalf("echo failed: %+v", res[0])
	}
	if err := json.Unmarshal(res[0].Result, &echo); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(echo.Args["payload"]), "1152921504606846976") {
		t.Errorf("2**60 did not survive: %s", echo.Args["payload"])
	}
	var payload map[string]any
	_ = json.Unmarshal(echo.Args["payload"], &payload)
	if payload["s"] != "ünïcode" || len(payload["list"].([]any)) != 3 {
		t.Errorf("nested payload mangled: %s", echo.Args["payload"])
	}
	if echo.Context["request_id"] != "req-1" {
		t.Errorf("context not passed: %v", echo.Context)
	}

	if !res[1].OK || string(res[1].Result) != `"pong"` {
		t.Errorf("ping: %+v", res[1])
	}
	// NoSuchMethod / UnsupportedVersion arrive as oslo's own classes
	for i, want := range map[int]string{2: "NoSuchMethod", 3: "UnsupportedVersion", 5: "NoSuchMethod"} {
		r := res[i]
		if r.OK || !(r.ExcType == want || strings.TrimSuffix(r.ExcClass, "_Remote") == want) {
			t.Errorf("op %d: want %s, got %+v", i, want, r)
		}
	}
	if !strings.Contains(res[2].Message, "Endpoint does not support RPC method nosuch") {
		t.Errorf("NoSuchMethod message: %q", res[2].Message)
	}
	if !strings.Contains(res[3].Message, "Endpoint does not support RPC version 2.0. Attempted method: echo") {
		t.Errorf("UnsupportedVersion message: %q", res[3].Message)
	}
	// an ironic exception class is rebuilt by the Python caller
	if r := res[4]; r.OK || r.ExcClass != "InvalidParameterValue_Remote" || !slices.Contains(r.MRO, "ironic.common.exception.InvalidParameterValue") {
		t.Errorf("InvalidParameterValue: %+v", r)
	}
	expectCast(t, casts, "cast-1")
	expectCast(t, casts, "fanout-1")
	// at_least_once to a server with no queue fails fast with MessageUndeliverable
	if r := res[8]; r.OK || r.ExcClass != "MessageUndeliverable" || r.Elapsed > 2 {
		t.Errorf("at_least_once: %+v", r)
	}
	if !res[9].OK {
		t.Errorf("call after errors failed: %+v", res[9])
	}
	// a panicking handler still answers (builtins.RuntimeError), it does not time out
	if r := res[10]; r.OK || r.ExcClass != "RuntimeError" || !strings.Contains(r.Message, "handler bug") {
		t.Errorf("panic: %+v", r)
	}
}

// A 6 s method with call_monitor_timeout=2 only survives if the server
// heartbeats (the monitor would fire after 2 s); without call monitor a 4 s
// timeout fires. oslo 14.0.3 keeps the overall timeout as a cap even with
// heartbeats (ReplyWaiter.wait), so the monitored call uses timeout=10.
func TestCallMonitorHeartbeats(t *testing.T) {
	t.Parallel()
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-hb"}, Dispatcher: testDispatcher(make(chan string, 1))})
	res := runPyClient(t, map[string]any{"ops": []map[string]any{
		{"op": "call", "server": "node-hb", "method": "sleep", "args": map[string]any{"seconds": 6}, "timeout": 10, "call_monitor_timeout": 2},
		{"op": "call", "server": "node-hb", "method": "sleep", "args": map[string]any{"seconds": 6}, "timeout": 4},
	}})
	if len(res) != 2 {
		t.Fatalf("results: %+v", res)
	}
	if !res[0].OK || string(res[0].Result) != `"slept"` || res[0].Elapsed < 5.5 {
		t.Errorf("with call monitor: %+v", res[0])
	}
	if res[1].OK || res[1].ExcClass != "MessagingTimeout" || res[1].Elapsed > 5.5 {
		t.Errorf("without call monitor: %+v", res[1])
	}
}
