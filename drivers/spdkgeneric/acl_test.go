package spdkgeneric_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	metalHost = "nqn.2014-08.org.nvmexpress:uuid:1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	otherHost = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
)

func TestTCPOffLoopbackNeedsAllowedHosts(t *testing.T) {
	c := spdk.NewUnix("/nonexistent", nil)
	o := spdkgeneric.Options{Client: c, NodeUUID: testNode, Transport: "TCP", ListenAddress: "192.0.2.10", ListenPort: "4420"}
	if _, err := spdkgeneric.NewStorage(o); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("TCP on 192.0.2.10 with any host: %v", err)
	}
	o.AllowedHosts = []string{metalHost}
	if _, err := spdkgeneric.NewStorage(o); err != nil {
		t.Fatal(err)
	}
}

// hostFacing activates pf0 through the driver as the reconciler does.
func hostFacing(t *testing.T, s *spdkgeneric.Storage) {
	t.Helper()
	ctx := context.Background()
	hcs, err := s.Controllers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cur *drivers.HostController
	if len(hcs) == 1 {
		cur = &hcs[0]
	}
	hc, err := s.EnsureController(ctx, nodestate.Function{PF: 0}, cur)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, hc); err != nil {
		t.Fatal(err)
	}
}

func acl(t *testing.T, c *spdk.Client) (bool, []string, int) {
	t.Helper()
	subs, err := c.GetSubsystems(context.Background(), drivers.HostSubsystemNQN(testNode, nodestate.Function{PF: 0}))
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, h := range subs[0].Hosts {
		hosts = append(hosts, h.NQN)
	}
	return subs[0].AllowAnyHost, hosts, len(subs[0].ListenAddresses)
}

func TestHostACL(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	newDriver := func(hosts ...string) *spdkgeneric.Storage {
		s, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: c, NodeUUID: testNode, Transport: "TCP",
			ListenAddress: "127.0.0.1", ListenPort: "4420", AllowedHosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// An agent without the option made pf0 open to any host.
	hostFacing(t, newDriver())
	if anyHost, hosts, ls := acl(t, c); !anyHost || len(hosts) != 0 || ls != 1 {
		t.Fatalf("no ACL: any=%v hosts=%v listeners=%d", anyHost, hosts, ls)
	}
	// The option is set: the existing subsystem is restricted, the listener
	// is not added twice, and the host is added once although it is listed
	// first ("already present" would be -32603).
	if err := c.AddHost(context.Background(), drivers.HostSubsystemNQN(testNode, nodestate.Function{PF: 0}), otherHost, ""); err != nil {
		t.Fatal(err)
	}
	s := newDriver(otherHost, metalHost)
	hostFacing(t, s)
	if anyHost, hosts, ls := acl(t, c); anyHost || len(hosts) != 2 || ls != 1 {
		t.Fatalf("ACL: any=%v hosts=%v listeners=%d", anyHost, hosts, ls)
	}
	// Converged: Controllers says active, nothing to do.
	e.ResetCalls()
	hcs, err := s.Controllers(context.Background())
	if err != nil || len(hcs) != 1 || !hcs[0].Active {
		t.Fatalf("converged controller: %+v %v", hcs, err)
	}
	if n := e.MutatingCalls(); n != 0 {
		t.Fatalf("%d mutating calls when converged", n)
	}
	// A host taken off the list loses access.
	hostFacing(t, newDriver(metalHost))
	if anyHost, hosts, _ := acl(t, c); anyHost || len(hosts) != 1 || hosts[0] != metalHost {
		t.Fatalf("after removing a host: any=%v hosts=%v", anyHost, hosts)
	}
	// A new subsystem is created closed: allow_any_host false from the start.
	if err := c.DeleteSubsystem(context.Background(), drivers.HostSubsystemNQN(testNode, nodestate.Function{PF: 0})); err != nil {
		t.Fatal(err)
	}
	e.ResetCalls()
	hostFacing(t, newDriver(metalHost))
	if anyHost, hosts, ls := acl(t, c); anyHost || len(hosts) != 1 || ls != 1 {
		t.Fatalf("new subsystem: any=%v hosts=%v listeners=%d", anyHost, hosts, ls)
	}
	if e.Calls("nvmf_subsystem_allow_any_host") != 0 {
		t.Fatal("new subsystem was created open and closed afterwards")
	}
}

func TestHostDHCHAP(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "host.key")
	// SPDK reads the file only when a host authenticates; the agent never.
	if err := os.WriteFile(keyFile, []byte("DHHC-1:00:placeholder:"), 0o600); err != nil {
		t.Fatal(err)
	}
	newDriver := func(key string) *spdkgeneric.Storage {
		s, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: c, NodeUUID: testNode, Transport: "TCP",
			ListenAddress: "192.0.2.10", ListenPort: "4420", AllowedHosts: []string{metalHost}, DHCHAPKeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: c, NodeUUID: testNode, Transport: "TCP",
		ListenAddress: "127.0.0.1", ListenPort: "4420", DHCHAPKeyFile: keyFile}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("key without allowed hosts: %v", err)
	}
	hostKey := func() string {
		subs, err := c.GetSubsystems(ctx, drivers.HostSubsystemNQN(testNode, nodestate.Function{PF: 0}))
		if err != nil || len(subs[0].Hosts) != 1 || subs[0].Hosts[0].NQN != metalHost {
			t.Fatalf("hosts: %+v %v", subs, err)
		}
		return subs[0].Hosts[0].DhchapKey
	}

	// First without a key, then the key is configured: the host entry is
	// replaced by one that names the loaded key.
	hostFacing(t, newDriver(""))
	if k := hostKey(); k != "" {
		t.Fatalf("key without dhchap_key_file: %q", k)
	}
	s := newDriver(keyFile)
	hostFacing(t, s)
	k := hostKey()
	keys, err := c.GetKeys(ctx)
	if err != nil || k == "" || len(keys) != 1 || keys[0].Name != k || keys[0].Path != keyFile {
		t.Fatalf("host key %q, keyring %+v %v", k, keys, err)
	}
	e.ResetCalls()
	if hcs, err := s.Controllers(ctx); err != nil || !hcs[0].Active || e.MutatingCalls() != 0 {
		t.Fatalf("converged: %+v %v, %d mutating", hcs, err, e.MutatingCalls())
	}

	// SPDK restarted: the key is loaded again before the host is added.
	sock := e.Socket()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	hostFacing(t, s)
	if hostKey() != k {
		t.Fatal("host key after an SPDK restart")
	}

	// A key file SPDK refuses (mode 0644) is an error, not an open door.
	bad := filepath.Join(dir, "loose.key")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(bad, 0o644)
	if err := c.DeleteSubsystem(ctx, drivers.HostSubsystemNQN(testNode, nodestate.Function{PF: 0})); err != nil {
		t.Fatal(err)
	}
	sb := newDriver(bad)
	hc, err := sb.EnsureController(ctx, nodestate.Function{PF: 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Activate(ctx, hc); !spdk.HasCode(err, -1) {
		t.Fatalf("Activate with a 0644 key file: %v", err)
	}
	if anyHost, hosts, ls := acl(t, c); anyHost || len(hosts) != 0 || ls != 0 {
		t.Fatalf("after the refused key: any=%v hosts=%v listeners=%d", anyHost, hosts, ls)
	}
}
