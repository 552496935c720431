package agentproc

import (
	"path/filepath"
	"syscall"
	"testing"
)

// StartT writes sections as the agent's config in a test directory, runs
// bin on it and stops it (SIGTERM) when the test ends, printing its log if
// the test failed.
func StartT(t testing.TB, bin string, sections map[string]map[string]string) *Proc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.conf")
	if err := WriteConfig(cfg, sections); err != nil {
		t.Fatal(err)
	}
	p, err := Start(bin, cfg, filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("agent log:\n%s", p.Log())
		}
	})
	return p
}
