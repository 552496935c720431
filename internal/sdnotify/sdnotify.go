// Package sdnotify speaks systemd's service notification protocol (see
// sd_notify(3) and systemd.service(5) Type=notify, WatchdogSec=): newline
// separated VAR=value assignments in one datagram to the AF_UNIX socket
// named by $NOTIFY_SOCKET. It is small enough to carry here rather than
// adding a dependency.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Notifier sends notifications to the service manager. A nil *Notifier (not
// started by systemd) ignores every call.
type Notifier struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// FromEnv connects to $NOTIFY_SOCKET: a path, or an abstract socket written
// with a leading '@'. It returns nil, nil when the variable is unset (not
// run by systemd, or a unit of another Type).
func FromEnv() (*Notifier, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil, nil
	}
	if name[0] != '/' && name[0] != '@' {
		// systemd also accepts vsock:..., which a DPU's local manager never uses
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: want an absolute path or an @abstract name: %w", name, errdefs.ErrInvalidArgument)
	}
	addr := &net.UnixAddr{Name: name, Net: "unixgram"}
	if name[0] == '@' {
		// Linux abstract namespace: a leading NUL byte instead of '@'. (Go
		// would translate '@' itself; spelled out so the protocol is visible.)
		addr.Name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	return &Notifier{conn: c}, nil
}

// Notify sends the assignments (e.g. "READY=1", "STATUS=...") as one datagram.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil {
		return nil
	}
	msg := strings.Join(assignments, "\n")
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", msg, err)
	}
	return nil
}

// Close releases the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	return n.conn.Close()
}

// WatchdogTimeout is the service's watchdog timeout from $WATCHDOG_USEC, or
// 0 when the watchdog is off or meant for another process ($WATCHDOG_PID set
// to a PID other than ours).
func WatchdogTimeout() (time.Duration, error) {
	raw := os.Getenv("WATCHDOG_USEC")
	if raw == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("WATCHDOG_PID %q is not a PID: %w", pid, errdefs.ErrInvalidArgument)
		}
		if p != os.Getpid() {
			return 0, nil
		}
	}
	us, err := strconv.ParseUint(raw, 10, 63)
	if err != nil || us == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC %q is not a positive number: %w", raw, errdefs.ErrInvalidArgument)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// Watchdog sends WATCHDOG=1 every timeout/2 while alive() is nil, until ctx
// is done. While alive() reports an error it sends no ping, so systemd
// restarts the service once timeout passes; the error goes into STATUS=
// and the log, once per change.
func Watchdog(ctx context.Context, n *Notifier, timeout time.Duration, alive func() error, log *zap.Logger) {
	if n == nil || timeout <= 0 {
		return
	}
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	wasStuck := false
	for {
		err := alive()
		switch {
		case err == nil:
			if wasStuck {
				log.Info("all loops alive again; feeding the systemd watchdog")
				_ = n.Notify("STATUS=serving")
			}
			if e := n.Notify("WATCHDOG=1"); e != nil {
				log.Warn("systemd watchdog ping failed", zap.Error(e))
			}
		case !wasStuck:
			log.Error("not feeding the systemd watchdog: a loop is stuck", zap.Error(err))
			_ = n.Notify("STATUS=" + strings.ReplaceAll(err.Error(), "\n", " "))
		}
		wasStuck = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
