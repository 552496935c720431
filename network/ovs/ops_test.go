package ovs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

const node = "6a3c2b1e-0000-4000-8000-000000000001"

func spec() IfaceSpec {
	return IfaceSpec{Name: "pf0sf88", IfaceID: "11111111-2222-3333-4444-555555555555", MAC: "fa:16:3e:00:00:01",
		NodeUUID: node, Function: "pf0sf88", MTU: 1450}
}

// snapshot with br-int (ports a, b) and br-ex (port ex0).
func fixture(extra ...Iface) *Snapshot {
	ifaces := append([]Iface{
		{UUID: "i-a", Name: "a", ExternalIDs: map[string]string{}},
		{UUID: "i-b", Name: "b", ExternalIDs: map[string]string{}},
		{UUID: "i-ex0", Name: "ex0", ExternalIDs: map[string]string{}},
	}, extra...)
	ports := []PortRow{{UUID: "p-a", Name: "a", Interfaces: []string{"i-a"}}, {UUID: "p-b", Name: "b", Interfaces: []string{"i-b"}},
		{UUID: "p-ex0", Name: "ex0", Interfaces: []string{"i-ex0"}}}
	brInt := BridgeRow{UUID: "br-int-uuid", Name: "br-int", Ports: []string{"p-a", "p-b"}}
	for _, f := range extra {
		ports = append(ports, PortRow{UUID: "p-" + f.Name, Name: f.Name, Interfaces: []string{f.UUID}})
		brInt.Ports = append(brInt.Ports, "p-"+f.Name)
	}
	return NewSnapshot([]BridgeRow{brInt, {UUID: "br-ex-uuid", Name: "br-ex", Ports: []string{"p-ex0"}}}, ports, ifaces)
}

func opSummary(ops []ovsdb.Operation) string {
	var s []string
	for _, op := range ops {
		x := op.Op + " " + op.Table
		if len(op.Where) == 1 {
			x += " " + op.Where[0].Value.(ovsdb.UUID).GoUUID
		}
		for _, m := range op.Mutations {
			x += " " + string(m.Mutator) + " " + m.Value.(ovsdb.OvsSet).GoSet[0].(ovsdb.UUID).GoUUID
		}
		s = append(s, x)
	}
	return strings.Join(s, "; ")
}

func TestPlugOpsFreshInsert(t *testing.T) {
	s := fixture()
	if s.Matches("br-int", spec()) {
		t.Fatal("Matches on an empty bridge")
	}
	ops, err := s.PlugOps("br-int", spec())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := opSummary(ops), "insert Interface; insert Port; mutate Bridge br-int-uuid insert port"; got != want {
		t.Fatalf("ops = %s\nwant %s", got, want)
	}
	row := ops[0].Row
	ext := row["external_ids"].(ovsdb.OvsMap).GoMap
	for k, v := range map[string]string{"iface-id": spec().IfaceID, "attached-mac": spec().MAC, "iface-status": "active",
		"ironic-node-uuid": node, "ironic-dpu-function": "pf0sf88"} {
		if ext[k] != v {
			t.Errorf("external_ids[%s] = %v, want %s", k, ext[k], v)
		}
	}
	if row["name"] != "pf0sf88" || row["mtu_request"].(ovsdb.OvsSet).GoSet[0] != 1450 {
		t.Errorf("interface row = %v", row)
	}
	// Named UUIDs must be valid OVSDB ids ([a-zA-Z_][a-zA-Z0-9_]*) and the
	// whole transaction must marshal.
	if ops[0].UUIDName != "iface" || ops[1].UUIDName != "port" || PlugIfaceOp(ops) != 0 {
		t.Errorf("uuid-names %q %q", ops[0].UUIDName, ops[1].UUIDName)
	}
	b, err := json.Marshal(ops)
	if err != nil || !strings.Contains(string(b), `["named-uuid","iface"]`) {
		t.Fatalf("marshal: %v %s", err, b)
	}

	sp := spec()
	sp.MTU = 0
	ops, _ = s.PlugOps("br-int", sp)
	if _, ok := ops[0].Row["mtu_request"]; ok {
		t.Error("mtu_request written without an MTU")
	}
}

func TestMatchesAndReplace(t *testing.T) {
	sp := spec()
	cur := Iface{UUID: "i-rep", Name: sp.Name, MTURequest: 1450, ExternalIDs: map[string]string{
		"iface-id": sp.IfaceID, "attached-mac": sp.MAC, "iface-status": "active", "ironic-node-uuid": node,
		"ironic-dpu-function": "pf0sf88", "ovn-installed": "true"}}
	s := fixture(cur)
	if !s.Matches("br-int", sp) {
		t.Fatal("identical rows do not match")
	}
	if got := s.Owned("br-int", node); len(got) != 1 || got[sp.Name] == nil {
		t.Fatalf("Owned = %v", got)
	}
	// Any difference (MAC, MTU) means a replace in one transaction.
	for _, mut := range []func(*IfaceSpec){func(x *IfaceSpec) { x.MAC = "fa:16:3e:00:00:02" }, func(x *IfaceSpec) { x.MTU = 9000 }} {
		x := sp
		mut(&x)
		if s.Matches("br-int", x) {
			t.Fatalf("Matches despite change %+v", x)
		}
		ops, err := s.PlugOps("br-int", x)
		if err != nil {
			t.Fatal(err)
		}
		want := "mutate Bridge br-int-uuid delete p-pf0sf88; delete Port p-pf0sf88; delete Interface i-rep; insert Interface; insert Port; mutate Bridge br-int-uuid insert port"
		if got := opSummary(ops); got != want {
			t.Fatalf("ops = %s\nwant %s", got, want)
		}
	}
}

func TestStalePortWithSameIfaceIDIsRemoved(t *testing.T) {
	sp := spec()
	stale := Iface{UUID: "i-old", Name: "oldrep", ExternalIDs: map[string]string{"iface-id": sp.IfaceID}}
	s := fixture(stale)
	if s.Matches("br-int", sp) {
		t.Fatal("Matches with a stale claimant")
	}
	ops, err := s.PlugOps("br-int", sp)
	if err != nil {
		t.Fatal(err)
	}
	want := "mutate Bridge br-int-uuid delete p-oldrep; delete Port p-oldrep; delete Interface i-old; insert Interface; insert Port; mutate Bridge br-int-uuid insert port"
	if got := opSummary(ops); got != want {
		t.Fatalf("ops = %s\nwant %s", got, want)
	}
	if r := s.Replaced(sp); len(r) != 1 || r[0] != "oldrep" {
		t.Errorf("Replaced = %v", r)
	}
	s.Forget("oldrep")
	if s.Iface("oldrep") != nil || s.PortBridge("oldrep") != "" || len(s.Bridge("br-int").Ports) != 2 {
		t.Error("Forget left traces")
	}
}

func TestConflicts(t *testing.T) {
	s := fixture()
	sp := spec()
	sp.Name = "ex0"
	if _, err := s.PlugOps("br-int", sp); !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "br-ex") {
		t.Errorf("port on other bridge: %v", err)
	}
	s = fixture(Iface{UUID: "i-p", Name: "pf0vf1", ExternalIDs: map[string]string{"ovn-plugged": "representor"}})
	sp.Name = "pf0vf1"
	if _, err := s.PlugOps("br-int", sp); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("ovn-plugged port: %v", err)
	}
	if _, err := s.PlugOps("br-nope", spec()); !errors.Is(err, errdefs.ErrNetwork) {
		t.Errorf("missing bridge: %v", err)
	}
}

func TestUnplugOps(t *testing.T) {
	s := fixture()
	if ops := s.UnplugOps("missing"); len(ops) != 0 {
		t.Errorf("unplug of a missing port: %v", ops)
	}
	if got, want := opSummary(s.UnplugOps("a")), "mutate Bridge br-int-uuid delete p-a; delete Port p-a; delete Interface i-a"; got != want {
		t.Errorf("ops = %s\nwant %s", got, want)
	}
}

func TestMTUOnlyChangeIsAnInPlaceUpdate(t *testing.T) {
	sp := spec()
	cur := Iface{UUID: "i-rep", Name: sp.Name, MTURequest: 1450, ExternalIDs: map[string]string{
		"iface-id": sp.IfaceID, "attached-mac": sp.MAC, "iface-status": "active", "ironic-node-uuid": node,
		"ironic-dpu-function": "pf0sf88", "ovn-installed": "true"}}
	s := fixture(cur)
	sp.MTU = 9000
	if !s.MTUOnly("br-int", sp) {
		t.Fatal("an MTU-only change must not replace the port")
	}
	ops := s.MTUOps(sp)
	if len(ops) != 1 || ops[0].Op != ovsdb.OperationUpdate || ops[0].Row["mtu_request"].(ovsdb.OvsSet).GoSet[0] != 9000 {
		t.Fatalf("ops %+v", ops)
	}
	sp.MAC = "fa:16:3e:00:00:09"
	if s.MTUOnly("br-int", sp) {
		t.Fatal("a MAC change is not MTU-only")
	}
}
