// Package agentstack starts, for functional tests of real agent processes,
// what an agent talks to besides SPDK: a private RabbitMQ and an OVS/OVN
// sandbox, both under one directory.
package agentstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/rabbitmq"
)

// Env is a running broker and OVN sandbox.
type Env struct {
	Broker *rabbitmq.Broker
	OVN    *ovn.Env
}

// Start starts both under dir (dir/rabbit, dir/ovn); on error nothing
// stays running.
func Start(ctx context.Context, dir string) (*Env, error) {
	broker, err := rabbitmq.Start(ctx, filepath.Join(dir, "rabbit"))
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	ovnDir := filepath.Join(dir, "ovn")
	if err := os.MkdirAll(ovnDir, 0o755); err != nil {
		broker.Stop()
		return nil, fmt.Errorf("ovn: %w", err)
	}
	stack, err := ovn.Start(ctx, ovn.Options{Dir: ovnDir})
	if err != nil {
		broker.Stop()
		return nil, fmt.Errorf("ovn: %w", err)
	}
	return &Env{Broker: broker, OVN: stack}, nil
}

// Stop stops the OVN sandbox, then the broker.
func (e *Env) Stop() {
	e.OVN.Stop()
	e.Broker.Stop()
}
