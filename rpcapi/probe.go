package rpcapi

import (
	"context"

	"go.uber.org/zap"
)

// Probe logs in to a broker of rawURL and disconnects: a reachability check
// for `ironic-dpu-agent check`.
func Probe(ctx context.Context, rawURL string, o RabbitOptions) error {
	b, err := resolveBrokers(rawURL, o)
	if err != nil {
		return err
	}
	s, err := openSession(ctx, b.url, b.order, b.opts, "ironic-dpu-agent:check", nil, zap.NewNop())
	if err != nil {
		return err
	}
	s.close()
	return nil
}
