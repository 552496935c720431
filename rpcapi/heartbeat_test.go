package rpcapi

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestHeartbeatInterval(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		in   *float64
		want time.Duration
	}{
		{nil, 0}, {f(1), 0}, {f(1.9), 0}, {f(2), time.Second}, {f(2.9), time.Second}, {f(5), 2500 * time.Millisecond}, {f(60), 30 * time.Second}, {f(-4), 0},
	} {
		if got := heartbeatInterval(c.in); got != c.want {
			t.Errorf("heartbeatInterval(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestRunHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var beats atomic.Int32
		stop := runHeartbeats(context.Background(), 2*time.Second, func(context.Context) { beats.Add(1) })
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if n := beats.Load(); n != 3 {
			t.Errorf("after 7 s at 2 s interval: %d beats, want 3", n)
		}
		stop()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := beats.Load(); n != 3 {
			t.Errorf("beats after stop: %d", n)
		}
	})
}
