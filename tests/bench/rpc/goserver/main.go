// Command goserver is the Go side of the RPC benchmark: an rpcapi server
// answering get_status, run as its own process so its RSS can be read.
// Usage: TRANSPORT_URL=rabbit://... goserver SERVER_NAME; prints READY.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: goserver SERVER_NAME")
	}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" { // for looking into the server's cost per call
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("get_status", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		return map[string]any{"node_uuid": os.Args[1], "generation": 1, "volumes": []any{}, "vifs": []any{}, "healthy": true}, nil
	})
	srv, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: os.Getenv("TRANSPORT_URL"), Rabbit: config.Defaults().Rabbit,
		Target: rpcapi.Target{Topic: "ironic-dpu-agent", Server: os.Args[1]}, Dispatcher: d, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	for !srv.Connected() {
		select {
		case err := <-done:
			return fmt.Errorf("server stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Println("READY")
	return <-done
}
