package daemon

import (
	"context"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

// buildReconcilers builds the DPU driver and the storage and network
// reconcilers. Returned closers stop their background work.
func buildReconcilers(ctx context.Context, cfg *config.Config, log *zap.Logger, trigger func()) ([]agent.Reconciler, []func(), error) {
	return nil, nil, nil
}
