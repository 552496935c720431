// Package backoff computes retry delays: exponential, capped, jittered.
package backoff

import "time"

// Delay is base·2^(n-1) capped at max, scaled into [½, 1] of that by
// jitter (0 ≤ jitter < 1): the retry delay after the n-th consecutive
// failure. Jitter keeps a fleet of DPUs from retrying in step.
func Delay(base, max time.Duration, n int, jitter float64) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(float64(d/2)*jitter)
}
