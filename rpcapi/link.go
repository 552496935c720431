package rpcapi

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Link is a Server's broker connection state. The owner makes it before the
// server (ServerConfig.Link) so that parts built earlier, such as the agent's
// health report and its metrics, read it without being wired to the server
// afterwards. The zero value is a link that is down.
type Link struct {
	up         atomic.Bool
	reconnects atomic.Uint64

	mu     sync.Mutex
	broker string // host:port of the last broker consumed from
	ever   bool   // connected at least once
}

// Connected reports whether the server is consuming right now.
func (l *Link) Connected() bool { return l.up.Load() }

// Health is nil while connected, else an errdefs.ErrUnavailable.
func (l *Link) Health() error {
	if !l.Connected() {
		return fmt.Errorf("not connected to the message broker: %w", errdefs.ErrUnavailable)
	}
	return nil
}

// Broker is host:port of the broker the server consumes from, or last
// consumed from while it reconnects ("" before the first connection). It
// never carries credentials.
func (l *Link) Broker() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broker
}

// Reconnects counts the connections made after the first one (each one a
// recovery from a lost broker connection or a cancelled consumer).
func (l *Link) Reconnects() uint64 { return l.reconnects.Load() }

// connected records that the server consumes from broker (host:port).
func (l *Link) connected(broker string) {
	l.mu.Lock()
	if l.ever {
		l.reconnects.Add(1)
	}
	l.ever, l.broker = true, broker
	l.mu.Unlock()
	l.up.Store(true)
}

func (l *Link) down() { l.up.Store(false) }
