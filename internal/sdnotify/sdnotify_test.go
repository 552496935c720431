package sdnotify_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/sdnotify"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/sdnotify/sdnotifytest"
)

func recv(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
		return ""
	}
}

func TestNotifyPathAndAbstractSockets(t *testing.T) {
	for _, want := range []string{
		"", // a path
		fmt.Sprintf("@ironic-dpu-agent-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		name, got := sdnotifytest.ListenT(t, want)
		t.Setenv("NOTIFY_SOCKET", name)
		n, err := sdnotify.FromEnv()
		if err != nil || n == nil {
			t.Fatalf("%s: %v %v", name, n, err)
		}
		if err := n.Notify("READY=1", "STATUS=serving"); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, got); m != "READY=1\nSTATUS=serving" {
			t.Fatalf("%s: got %q", name, m)
		}
		_ = n.Close()
	}
}

func TestNoSocketNoNotifier(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := sdnotify.FromEnv()
	if n != nil || err != nil {
		t.Fatalf("got %v %v", n, err)
	}
	if err := n.Notify("READY=1"); err != nil { // nil notifier: no-op
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative.sock")
	if _, err := sdnotify.FromEnv(); err == nil {
		t.Fatal("relative NOTIFY_SOCKET accepted")
	}
}

func TestWatchdogTimeoutHonoursPID(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	if d, err := sdnotify.WatchdogTimeout(); d != 0 || err != nil {
		t.Fatalf("unset: %v %v", d, err)
	}
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", "")
	if d, _ := sdnotify.WatchdogTimeout(); d != 30*time.Second {
		t.Fatalf("no PID: %v", d)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d, _ := sdnotify.WatchdogTimeout(); d != 30*time.Second {
		t.Fatalf("our PID: %v", d)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d, err := sdnotify.WatchdogTimeout(); d != 0 || err != nil {
		t.Fatalf("another PID's watchdog: %v %v", d, err)
	}
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "soon")
	if _, err := sdnotify.WatchdogTimeout(); err == nil {
		t.Fatal("bad WATCHDOG_USEC accepted")
	}
}

// Pings come every timeout/2 while alive, none while a loop is stuck (the
// reason goes to STATUS=), and they resume when it recovers.
func TestWatchdogFedOnlyWhileAlive(t *testing.T) {
	name, got := sdnotifytest.ListenT(t, "")
	t.Setenv("NOTIFY_SOCKET", name)
	n, err := sdnotify.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var stuck atomic.Bool
	alive := func() error {
		if stuck.Load() {
			return errors.New("loop stuck: reconcile/storage")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sdnotify.Watchdog(ctx, n, 40*time.Millisecond, alive, zaptest.NewLogger(t)) }()
	defer func() { cancel(); <-done }()

	count := func(d time.Duration) (int, []string) { return sdnotifytest.Collect(got, d) }
	if p, _ := count(400 * time.Millisecond); p < 5 {
		t.Fatalf("%d pings in 400ms at a 20ms period", p)
	}
	stuck.Store(true)
	_, other := count(60 * time.Millisecond) // a ping decided before the switch may still arrive
	p, more := count(400 * time.Millisecond)
	other = append(other, more...)
	if p != 0 {
		t.Fatalf("%d pings while a loop is stuck", p)
	}
	if len(other) != 1 || !strings.HasPrefix(other[0], "STATUS=") || !strings.Contains(other[0], "reconcile/storage") {
		t.Fatalf("status while stuck: %q", other)
	}
	stuck.Store(false)
	if p, _ := count(400 * time.Millisecond); p < 5 {
		t.Fatalf("%d pings after recovery", p)
	}
}
