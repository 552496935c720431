//go:build functional

package ovn

import (
	"context"
	"strings"
	"testing"
)

func TestStackBindsPort(t *testing.T) {
	ctx := context.Background()
	e := New(t, Options{})
	if _, err := e.Nbctl(ctx, "ls-add", "ls0", "--", "lsp-add", "ls0", "lp0", "--", "lsp-set-addresses", "lp0", "fa:16:3e:00:00:01 10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Vsctl(ctx, "add-port", e.Bridge, "vif0", "--", "set", "Interface", "vif0", "external_ids:iface-id=lp0"); err != nil {
		t.Fatal(err)
	}
	want, err := e.ChassisUUID(ctx)
	if err != nil || want == "" {
		t.Fatalf("chassis: %q %v", want, err)
	}
	if _, err := e.Vsctl(ctx, "wait-until", "Interface", "vif0", "external_ids:ovn-installed=\"true\""); err != nil {
		t.Fatal(err)
	}
	got, err := e.PortBindingChassis(ctx, "lp0")
	if err != nil || got != want {
		t.Fatalf("Port_Binding chassis = %q (%v), want %q", got, err, want)
	}
	// Kill and restart the local ovsdb-server: the data survives.
	if err := e.KillOVSDB(); err != nil {
		t.Fatal(err)
	}
	if err := e.StartOVSDB(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := e.Vsctl(ctx, "list-ports", e.Bridge)
	if err != nil || !strings.Contains(out, "vif0") {
		t.Fatalf("after restart: %q %v", out, err)
	}
}
