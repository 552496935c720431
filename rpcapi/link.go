package rpcapi

import (
	"fmt"
	"sync/atomic"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Link is a Server's broker connection state. The owner makes it before the
// server (ServerConfig.Link) so that parts built earlier, such as the agent's
// health report, read it without being wired to the server afterwards.
// The zero value is a link that is down.
type Link struct{ up atomic.Bool }

// Connected reports whether the server is consuming right now.
func (l *Link) Connected() bool { return l.up.Load() }

// Health is nil while connected, else an errdefs.ErrUnavailable.
func (l *Link) Health() error {
	if !l.Connected() {
		return fmt.Errorf("not connected to the message broker: %w", errdefs.ErrUnavailable)
	}
	return nil
}

func (l *Link) set(up bool) { l.up.Store(up) }
