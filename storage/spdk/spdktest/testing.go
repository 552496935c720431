package spdktest

import (
	"os"
	"path/filepath"
	"testing"
)

// StartT starts an emulator on a fresh socket for a test and stops it in
// t.Cleanup. The socket lives in a short temp dir (unix paths are limited to
// 108 bytes, and t.TempDir can be longer).
func StartT(t testing.TB, opts Options) *Emulator {
	t.Helper()
	dir, err := os.MkdirTemp("", "spdk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := New(opts)
	if err := e.Start(filepath.Join(dir, "spdk.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

// CinderVolume describes a remote volume as a Cinder LVM/nvmet or SPDK
// target exports it: subsystem nqn.2010-10.org.openstack:volume-<id> with
// one namespace whose uuid is the volume id, on 127.0.0.1 at the given
// ports, open to hostNQN only.
func CinderVolume(id, hostNQN string, ports ...string) RemoteSubsystem {
	r := RemoteSubsystem{
		NQN: "nqn.2010-10.org.openstack:volume-" + id, Serial: "CINDER0000000001", Model: "SPDK Cinder volume",
		Hosts: []string{hostNQN}, Namespaces: []RemoteNamespace{{NSID: 1, UUID: id}},
	}
	for _, p := range ports {
		r.Listeners = append(r.Listeners, Listener{Trtype: "TCP", Adrfam: "IPv4", Traddr: "127.0.0.1", Trsvcid: p})
	}
	return r
}
