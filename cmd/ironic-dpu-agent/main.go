// Command ironic-dpu-agent is the DPU-side daemon for Ironic bare metal.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
