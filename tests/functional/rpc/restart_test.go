//go:build functional

package rpc

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// Not parallel: it restarts the package's broker while nothing else runs.
func TestBrokerRestart(t *testing.T) {
	var mu sync.Mutex
	counts := map[int]int{}
	var connects atomic.Int32
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("count", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		var seq int
		if err := json.Unmarshal(req.Args["seq"], &seq); err != nil {
			return nil, err
		}
		mu.Lock()
		counts[seq]++
		mu.Unlock()
		return seq, nil
	})
	srv := startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-restart"}, Dispatcher: d,
		OnConnect: func() { connects.Add(1) }})
	c := newClient(t)

	var ok, failed atomic.Int32
	stop := make(chan struct{})
	streamDone := make(chan struct{})
	go func() { // the call stream; stopped by the test below
		defer close(streamDone)
		tgt := rpcapi.Target{Topic: topic, Server: "node-restart"}
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := c.Call(context.Background(), tgt, "count", map[string]int{"seq": seq}, rpcapi.CallOptions{Timeout: time.Second})
			if err != nil {
				failed.Add(1)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			var got int
			if json.Unmarshal(res, &got) != nil || got != seq {
				t.Errorf("call %d answered %s", seq, res)
			}
			ok.Add(1)
		}
	}()
	defer func() { close(stop); <-streamDone }()

	waitFor(t, 10*time.Second, "calls before restart", func() bool { return ok.Load() >= 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := broker.Restart(ctx); err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Logf("broker restarted in %s", time.Since(start).Round(time.Millisecond))
	before := ok.Load()
	waitFor(t, 30*time.Second, "calls after restart", func() bool { return ok.Load() >= before+20 })
	if !srv.Connected() {
		t.Error("server not connected after restart")
	}
	if n := connects.Load(); n < 2 {
		t.Errorf("OnConnect ran %d times, want >= 2 (initial + reconnect)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for seq, n := range counts {
		if n > 1 {
			t.Errorf("call %d handled %d times", seq, n)
		}
	}
	t.Logf("%d calls answered, %d failed during the outage, %d reconnects", ok.Load(), failed.Load(), connects.Load()-1)
}
