// Package ticker runs a function at a fixed period: the agent's health
// probe and the RPC server's call-monitor heartbeats.
package ticker

import (
	"context"
	"time"
)

// Every calls fn(ctx) every period until ctx is done; it returns then. A
// call that takes longer than period delays the next one (time.Ticker drops
// the ticks missed meanwhile).
func Every(ctx context.Context, period time.Duration, fn func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
