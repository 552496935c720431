package rpcapi

import (
	"context"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

// Probe logs in to a broker of rawURL and disconnects: a reachability check
// for `ironic-dpu-agent check`.
func Probe(ctx context.Context, rawURL string, o config.RabbitOpts) error {
	u, err := ParseTransportURL(rawURL)
	if err != nil {
		return err
	}
	opts, _, err := u.ApplyQuery(o)
	if err != nil {
		return err
	}
	order, err := newHostOrder(u.Hosts, opts.KombuFailoverStrategy, nil)
	if err != nil {
		return err
	}
	s, err := openSession(ctx, u, order, opts, "ironic-dpu-agent:check", nil, zap.NewNop())
	if err != nil {
		return err
	}
	s.close()
	return nil
}
