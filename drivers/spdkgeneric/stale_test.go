package spdkgeneric

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// staleSocket leaves a socket file nobody listens on, as a killed SPDK does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
	if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stale socket accepts: %v", err)
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestRemoveStaleSocket(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vfio-user")
	outside := t.TempDir()
	for _, d := range []string{filepath.Join(root, "pf0"), filepath.Join(root, "pf1"), filepath.Join(root, "pf2"), filepath.Join(root, "pf3")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	// pf0: stale, removed.
	staleSocket(t, filepath.Join(root, "pf0", "cntrl"))
	if ok, err := removeStaleSocket(root, "pf0"); !ok || err != nil || exists(filepath.Join(root, "pf0", "cntrl")) {
		t.Fatalf("stale socket: removed=%v err=%v", ok, err)
	}
	// No file: nothing to do.
	if ok, err := removeStaleSocket(root, "pf0"); ok || err != nil {
		t.Fatalf("missing cntrl: %v %v", ok, err)
	}
	// pf1: a live server owns it.
	live, err := net.Listen("unix", filepath.Join(root, "pf1", "cntrl"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if ok, err := removeStaleSocket(root, "pf1"); ok || err != nil || !exists(filepath.Join(root, "pf1", "cntrl")) {
		t.Fatalf("live socket: removed=%v err=%v", ok, err)
	}
	// pf2: a regular file is never removed.
	if err := os.WriteFile(filepath.Join(root, "pf2", "cntrl"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := removeStaleSocket(root, "pf2"); ok || err != nil || !exists(filepath.Join(root, "pf2", "cntrl")) {
		t.Fatalf("regular file: removed=%v err=%v", ok, err)
	}
	// pf3: cntrl is a symlink to a stale socket outside the dir.
	staleSocket(t, filepath.Join(outside, "victim"))
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "pf3", "cntrl")); err != nil {
		t.Fatal(err)
	}
	if ok, err := removeStaleSocket(root, "pf3"); ok || err != nil || !exists(filepath.Join(outside, "victim")) || !exists(filepath.Join(root, "pf3", "cntrl")) {
		t.Fatalf("symlinked cntrl: removed=%v err=%v", ok, err)
	}
	// pf4: the listener directory itself is a symlink out of the dir.
	staleSocket(t, filepath.Join(outside, "cntrl"))
	if err := os.Symlink(outside, filepath.Join(root, "pf4")); err != nil {
		t.Fatal(err)
	}
	if ok, err := removeStaleSocket(root, "pf4"); ok || err == nil || !exists(filepath.Join(outside, "cntrl")) {
		t.Fatalf("symlinked dir: removed=%v err=%v", ok, err)
	}
	for _, bad := range []string{"", ".", "..", "../pf0", "pf0/x"} {
		if ok, err := removeStaleSocket(root, bad); ok || err == nil {
			t.Errorf("name %q: removed=%v err=%v", bad, ok, err)
		}
	}
}
