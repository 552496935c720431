package ovn

import (
	"context"
	"os"
	"testing"
)

// New starts a stack for one test (or returns after t.Fatal) and stops it in
// t.Cleanup. The directory is short (unix socket paths max out at 107 bytes)
// and is removed afterwards unless the test failed, so logs stay readable.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	dir, err := os.MkdirTemp("", "ovn-")
	if err != nil {
		t.Fatal(err)
	}
	o.Dir = dir
	e, err := Start(context.Background(), o)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("start OVS/OVN stack: %v", err)
	}
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			t.Logf("OVS/OVN logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return e
}
