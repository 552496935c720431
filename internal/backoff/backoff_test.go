package backoff

import (
	"testing"
	"time"
)

func TestDelayGrowsToTheCapWithJitter(t *testing.T) {
	base, cap := 100*time.Millisecond, time.Second
	for _, c := range []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{1, 0, 50 * time.Millisecond}, {1, 0.999999, 100 * time.Millisecond},
		{2, 0, 100 * time.Millisecond}, {3, 0, 200 * time.Millisecond}, {4, 0.5, 600 * time.Millisecond},
		{5, 0, 500 * time.Millisecond}, {50, 0.999999, time.Second},
	} {
		got := Delay(base, cap, c.n, c.jitter)
		if diff := got - c.want; diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("Delay(n=%d, jitter=%v) = %v, want %v", c.n, c.jitter, got, c.want)
		}
	}
}
