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

// HangAfter is how long Returns waits before it calls a call hung. It is a
// watchdog for a call whose blocking dependency never answers, not a
// performance bound: the call either returns on its own or never does.
const HangAfter = time.Minute

// Returns runs f and fails t when f has not returned after HangAfter. Use it
// where the property under test is "does not wait for X" and X is made to
// block forever: returning at all is the assertion, however long it takes.
// f runs on another goroutine, so it must not call t.Fatal (record what it
// saw and check that after Returns).
func Returns(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(HangAfter):
		t.Fatalf("%s hung: no return after %v", what, HangAfter)
	}
}
