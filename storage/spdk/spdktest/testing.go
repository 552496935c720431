package spdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
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

// RPC is one JSON-RPC call of a scripted setup.
type RPC struct {
	Method string
	Params any
}

// Caller sends one call (spdk.Client does).
type Caller interface {
	Call(ctx context.Context, method string, params, result any) error
}

// Run sends calls in order and stops at the first error.
func Run(ctx context.Context, c Caller, calls []RPC) error {
	for _, r := range calls {
		if err := c.Call(ctx, r.Method, r.Params, nil); err != nil {
			return fmt.Errorf("%s: %w", r.Method, err)
		}
	}
	return nil
}

// LvstoreSetup makes this emulator a Cinder SPDK target: Malloc0 of mib MiB
// with lvstore "cinder-volumes" on it, and the TCP transport.
func LvstoreSetup(mib int) []RPC {
	return []RPC{
		{"bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": mib * 2048, "block_size": 512}},
		{"bdev_lvol_create_lvstore", map[string]any{"bdev_name": "Malloc0", "lvs_name": "cinder-volumes"}},
		{"nvmf_create_transport", map[string]any{"trtype": "TCP"}},
	}
}

// LvolExport creates volume id as a sizeMiB lvol and exports it as Cinder's
// SPDK driver does: its own subsystem, namespace uuid = volume id, TCP on
// 127.0.0.1:port.
func LvolExport(id string, sizeMiB int, port string) []RPC {
	nqn := "nqn.2010-10.org.openstack:volume-" + id
	return []RPC{
		{"bdev_lvol_create", map[string]any{"lvs_name": "cinder-volumes", "lvol_name": "volume-" + id, "size_in_mib": sizeMiB}},
		{"nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}},
		{"nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "cinder-volumes/volume-" + id, "uuid": id}}},
		{"nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port}}},
	}
}

// HungT is SPDK wedged, not dead: a socket that accepts connections and
// reads requests but never answers, so every call waits its timeout. It
// returns the socket path (in a short temp dir) and stops in t.Cleanup.
func HungT(t testing.TB) string {
	t.Helper()
	sock, _ := HungMethodsT(t)
	return sock
}

// HungMethodsT is HungT that also sends the method of each request it reads
// on the returned channel (buffered; a method nobody has room for is
// dropped), for tests that check what was asked of the wedged SPDK.
func HungMethodsT(t testing.TB) (string, <-chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "spdk-hung")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "spdk.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan string, 64)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() { // ends when l is closed
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { swallow(c, asked) }) // ends when c is closed
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		_ = os.RemoveAll(dir)
	})
	return sock, asked
}

// swallow reads c's requests and never replies, reporting each method on
// asked; what is not JSON is read and dropped all the same.
func swallow(c net.Conn, asked chan<- string) {
	dec := json.NewDecoder(c)
	for {
		var req struct {
			Method string `json:"method"`
		}
		if dec.Decode(&req) != nil {
			_, _ = io.Copy(io.Discard, c)
			return
		}
		select {
		case asked <- req.Method:
		default:
		}
	}
}
