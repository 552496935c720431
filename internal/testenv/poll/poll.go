// Package poll waits in tests for a condition another process brings about.
package poll

import (
	"testing"
	"time"
)

// Until checks cond every interval until it holds, and fails t (naming what
// and the bound) when within has passed first.
func Until(t testing.TB, within, every time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(every)
	}
}
