//go:build functional

package network_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Two "hosts" in network namespaces, each behind a veth whose DPU-side end
// is named like a BlueField VF representor, are plugged by the reconciler into
// one OVN logical switch (userspace netdev datapath) and ping each other; an
// OVN ACL dropping ICMP (what a Neutron security group rule becomes) stops
// the ping, and removing it lets it through again. Needs root; traffic never
// leaves the two namespaces.
func TestTwoHostsPingThroughOVN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, veths, the netdev datapath); run the functional tier as root")
	}
	for _, bin := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found (apt-get install iproute2 iputils-ping): %v", bin, err)
		}
	}
	ctx := context.Background()
	// Fixed names, unique per test process so parallel runs do not collide.
	id := os.Getpid() % 10000
	type host struct {
		ns, rep, ip string
		vif         nodestate.VIF
	}
	hosts := []host{
		{ns: fmt.Sprintf("idpa%d-h1", id), rep: "pf0vf101", ip: "10.9.0.1"},
		{ns: fmt.Sprintf("idpa%d-h2", id), rep: "pf0vf102", ip: "10.9.0.2"},
	}
	ipCmd := func(args ...string) error {
		out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := ipCmd("netns", "add", hosts[0].ns); err != nil {
		t.Fatalf("network namespaces do not work here: %v", err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", hosts[0].ns) })
	if err := ipCmd("netns", "add", hosts[1].ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", hosts[1].ns) })

	e := ovn.New(t, ovn.Options{Datapath: "netdev", SystemID: "dpu-chassis-netdev", Bridge: fmt.Sprintf("br-idpa%d", id)})
	for i := range hosts {
		h := &hosts[i]
		h.vif = nodestate.VIF{PortID: uuidN('9'), MAC: macN(0x900 + i), Function: vf(0, 101+i)} // within the card's 127 VFs per PF
		addLSP(t, e, "ls-ping", h.vif.PortID, h.vif.MAC, h.ip)
		for _, args := range [][]string{
			{"link", "add", h.rep, "type", "veth", "peer", "name", "vf0"},
		} {
			if err := ipCmd(args...); err != nil {
				t.Fatal(err)
			}
		}
		rep := h.rep
		t.Cleanup(func() { _ = ipCmd("link", "del", rep) })
		for _, args := range [][]string{
			{"link", "set", "vf0", "netns", h.ns},
			{"-n", h.ns, "link", "set", "vf0", "address", h.vif.MAC},
			{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", "vf0"},
			{"-n", h.ns, "link", "set", "vf0", "up"},
			{"-n", h.ns, "link", "set", "lo", "up"},
			{"link", "set", h.rep, "up"},
		} {
			if err := ipCmd(args...); err != nil {
				t.Fatal(err)
			}
		}
	}

	r := newReconciler(t, e, uuidN('a'), nil)
	if err := r.reconcile(hosts[0].vif, hosts[1].vif); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if st := r.observe()[h.vif.PortID]; st.State != nodestate.StatePlugged || st.Representor != h.rep {
			t.Fatalf("%s: %+v", h.rep, st)
		}
	}
	ping := func() error {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", hosts[0].ns,
			"ping", "-c", "3", "-i", "0.2", "-W", "1", hosts[1].ip).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := ping(); err != nil {
		t.Fatalf("ping through OVN failed: %v", err)
	}

	// A security-group-like ACL: drop ICMP towards the logical switch's ports.
	if _, err := e.Nbctl(ctx, "--wait=hv", "acl-add", "ls-ping", "to-lport", "1002", "icmp4", "drop"); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err == nil {
		t.Fatal("ping still passes with an ACL dropping icmp4")
	}
	if _, err := e.Nbctl(ctx, "--wait=hv", "acl-del", "ls-ping"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for err := ping(); err != nil; err = ping() {
		if time.Now().After(deadline) {
			t.Fatalf("ping does not recover after removing the ACL: %v", err)
		}
	}
	if err := r.reconcile(); err != nil {
		t.Fatal(err)
	}
}
