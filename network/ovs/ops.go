package ovs

import (
	"fmt"
	"slices"
	"sort"

	"github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// external_ids keys the agent writes on an Interface.
const (
	KeyIfaceID      = "iface-id"         // Neutron port UUID == OVN LSP name (ovn-controller binds on it)
	KeyAttachedMAC  = "attached-mac"     // os-vif convention
	KeyIfaceStatus  = "iface-status"     // os-vif convention
	KeyNodeUUID     = "ironic-node-uuid" // ownership: the agent only ever removes rows carrying its node
	KeyFunction     = "ironic-dpu-function"
	KeyOVNInstalled = "ovn-installed" // set by ovn-controller once the port's flows are in OVS
	// KeyOVNPlugged marks ports ovn-controller's own VIF plug provider made;
	// the agent never touches those (the two mechanisms would fight).
	KeyOVNPlugged = "ovn-plugged"
)

// IfaceSpec is what one plugged VIF looks like in OVSDB.
type IfaceSpec struct {
	Name     string // representor netdev == Port.name == Interface.name
	IfaceID  string // Neutron port UUID
	MAC      string
	NodeUUID string
	Function string // e.g. "pf0sf88", so an unplug after a restart knows what to release
	MTU      int    // 0: leave mtu_request empty
}

func (s IfaceSpec) externalIDs() map[string]string {
	return map[string]string{
		KeyIfaceID:     s.IfaceID,
		KeyAttachedMAC: s.MAC,
		KeyIfaceStatus: "active",
		KeyNodeUUID:    s.NodeUUID,
		KeyFunction:    s.Function,
	}
}

// Iface is the part of an Interface row the agent reads.
type Iface struct {
	UUID        string
	Name        string
	ExternalIDs map[string]string
	MTURequest  int // 0 = unset
	OFPort      int // 0 = unknown, -1 = failed
	Error       string
}

// Installed reports whether ovn-controller finished binding the interface.
func (i *Iface) Installed() bool { return i.ExternalIDs[KeyOVNInstalled] == "true" }

// PortRow is the part of a Port row the agent reads.
type PortRow struct {
	UUID       string
	Name       string
	Interfaces []string
}

// BridgeRow is the part of a Bridge row the agent reads.
type BridgeRow struct {
	UUID  string
	Name  string
	Ports []string
}

// Snapshot is a consistent copy of the Bridge/Port/Interface tables, taken
// from the client's cache; plans are computed on it without holding locks.
type Snapshot struct {
	Bridges    map[string]*BridgeRow // by UUID
	Ports      map[string]*PortRow   // by UUID
	Interfaces map[string]*Iface     // by UUID

	portBridge  map[string]string // port UUID -> bridge UUID
	portByName  map[string]string // name -> port UUID
	ifaceByName map[string]string // name -> iface UUID
}

// NewSnapshot indexes the given rows.
func NewSnapshot(bridges []BridgeRow, ports []PortRow, ifaces []Iface) *Snapshot {
	s := &Snapshot{
		Bridges: map[string]*BridgeRow{}, Ports: map[string]*PortRow{}, Interfaces: map[string]*Iface{},
		portBridge: map[string]string{}, portByName: map[string]string{}, ifaceByName: map[string]string{},
	}
	for i := range bridges {
		b := &bridges[i]
		s.Bridges[b.UUID] = b
		for _, p := range b.Ports {
			s.portBridge[p] = b.UUID
		}
	}
	for i := range ports {
		p := &ports[i]
		s.Ports[p.UUID] = p
		s.portByName[p.Name] = p.UUID
	}
	for i := range ifaces {
		f := &ifaces[i]
		s.Interfaces[f.UUID] = f
		s.ifaceByName[f.Name] = f.UUID
	}
	return s
}

// Bridge finds a bridge by name.
func (s *Snapshot) Bridge(name string) *BridgeRow {
	for _, b := range s.Bridges {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// Iface finds an interface by name.
func (s *Snapshot) Iface(name string) *Iface {
	if u, ok := s.ifaceByName[name]; ok {
		return s.Interfaces[u]
	}
	return nil
}

// PortBridge returns the name of the bridge holding port name ("" if none).
func (s *Snapshot) PortBridge(name string) string {
	pu, ok := s.portByName[name]
	if !ok {
		return ""
	}
	if b := s.Bridges[s.portBridge[pu]]; b != nil {
		return b.Name
	}
	return ""
}

// Owned returns the interfaces on bridge whose external_ids carry node, by name.
func (s *Snapshot) Owned(bridge, node string) map[string]*Iface {
	out := map[string]*Iface{}
	b := s.Bridge(bridge)
	if b == nil {
		return out
	}
	for _, pu := range b.Ports {
		p := s.Ports[pu]
		if p == nil {
			continue
		}
		for _, iu := range p.Interfaces {
			if f := s.Interfaces[iu]; f != nil && f.ExternalIDs[KeyNodeUUID] == node {
				out[f.Name] = f
			}
		}
	}
	return out
}

// Matches reports whether the existing rows for spec on bridge already are
// what a plug would write, so reconcile can skip the write.
func (s *Snapshot) Matches(bridge string, spec IfaceSpec) bool {
	if s.PortBridge(spec.Name) != bridge {
		return false
	}
	p := s.Ports[s.portByName[spec.Name]]
	f := s.Iface(spec.Name)
	if p == nil || f == nil || len(p.Interfaces) != 1 || p.Interfaces[0] != f.UUID {
		return false
	}
	for k, v := range spec.externalIDs() {
		if f.ExternalIDs[k] != v {
			return false
		}
	}
	if f.MTURequest != spec.MTU {
		return false
	}
	// Another port claiming the same iface-id must still be removed.
	return len(s.stale(spec)) == 0
}

// MTUOnly reports whether the rows for spec differ from it in mtu_request
// alone: then MTUOps changes the MTU in place, and the host's NIC does not
// flap the way a port replacement would make it.
func (s *Snapshot) MTUOnly(bridge string, spec IfaceSpec) bool {
	f := s.Iface(spec.Name)
	if f == nil || f.MTURequest == spec.MTU {
		return false
	}
	cur := spec
	cur.MTU = f.MTURequest
	return s.Matches(bridge, cur)
}

// MTUOps sets spec's mtu_request on the existing Interface (empty when
// spec.MTU is 0).
func (s *Snapshot) MTUOps(spec IfaceSpec) []ovsdb.Operation {
	set := []any{}
	if spec.MTU > 0 {
		set = append(set, spec.MTU)
	}
	return []ovsdb.Operation{{Op: ovsdb.OperationUpdate, Table: "Interface",
		Where: []ovsdb.Condition{uuidIs(s.Iface(spec.Name).UUID)},
		Row:   ovsdb.Row{"mtu_request": ovsdb.OvsSet{GoSet: set}}}}
}

// stale returns ports other than spec.Name whose interface claims spec's iface-id.
func (s *Snapshot) stale(spec IfaceSpec) []string {
	var out []string
	for _, f := range s.Interfaces {
		if f.Name == spec.Name || f.ExternalIDs[KeyIfaceID] != spec.IfaceID {
			continue
		}
		if pu, ok := s.portByName[f.Name]; ok {
			out = append(out, pu)
		}
	}
	sort.Strings(out)
	return out
}

// PlugOps builds the ONE transaction that plugs spec into bridge: remove a
// previous Port of the same name (if its contents differ) and any stale Port
// claiming the same iface-id, insert Interface + Port, add the Port to
// bridge.ports. Replacing instead of updating gives the new Interface a new
// UUID, so waiting for its ovn-installed cannot see a stale "true".
// A port of that name on another bridge is errdefs.ErrConflict.
func (s *Snapshot) PlugOps(bridge string, spec IfaceSpec) ([]ovsdb.Operation, error) {
	br := s.Bridge(bridge)
	if br == nil {
		return nil, fmt.Errorf("%w: bridge %s does not exist", errdefs.ErrNetwork, bridge)
	}
	if other := s.PortBridge(spec.Name); other != "" && other != bridge {
		return nil, fmt.Errorf("%w: representor %s is already a port of bridge %s, not %s; refusing to move it",
			errdefs.ErrConflict, spec.Name, other, bridge)
	}
	if f := s.Iface(spec.Name); f != nil && f.ExternalIDs[KeyOVNPlugged] != "" {
		return nil, fmt.Errorf("%w: interface %s is managed by ovn-controller's VIF plug provider (%s)",
			errdefs.ErrConflict, spec.Name, f.ExternalIDs[KeyOVNPlugged])
	}
	var ops []ovsdb.Operation
	var del []string
	if pu, ok := s.portByName[spec.Name]; ok {
		del = append(del, pu)
	}
	del = append(del, s.stale(spec)...)
	for _, pu := range del {
		ops = append(ops, s.deletePortOps(pu)...)
	}
	row := ovsdb.Row{
		"name":         spec.Name,
		"type":         "",
		"external_ids": ovsMap(spec.externalIDs()),
	}
	if spec.MTU > 0 {
		row["mtu_request"] = ovsdb.OvsSet{GoSet: []any{spec.MTU}}
	}
	ops = append(ops,
		ovsdb.Operation{Op: ovsdb.OperationInsert, Table: "Interface", UUIDName: "iface", Row: row},
		ovsdb.Operation{Op: ovsdb.OperationInsert, Table: "Port", UUIDName: "port", Row: ovsdb.Row{
			"name":       spec.Name,
			"interfaces": ovsdb.OvsSet{GoSet: []any{ovsdb.UUID{GoUUID: "iface"}}},
		}},
		ovsdb.Operation{Op: ovsdb.OperationMutate, Table: "Bridge",
			Where:     []ovsdb.Condition{uuidIs(br.UUID)},
			Mutations: []ovsdb.Mutation{{Column: "ports", Mutator: ovsdb.MutateOperationInsert, Value: ovsdb.OvsSet{GoSet: []any{ovsdb.UUID{GoUUID: "port"}}}}},
		})
	return ops, nil
}

// PlugIfaceOp is the index of the Interface insert in PlugOps' result, whose
// OperationResult.UUID is the new Interface's UUID.
func PlugIfaceOp(ops []ovsdb.Operation) int {
	for i, op := range ops {
		if op.Op == ovsdb.OperationInsert && op.Table == "Interface" {
			return i
		}
	}
	return -1
}

// UnplugOps removes port name (and its interfaces) from whatever bridge holds
// it. A missing port gives no ops: unplug is idempotent.
func (s *Snapshot) UnplugOps(name string) []ovsdb.Operation {
	pu, ok := s.portByName[name]
	if !ok {
		return nil
	}
	return s.deletePortOps(pu)
}

func (s *Snapshot) deletePortOps(pu string) []ovsdb.Operation {
	var ops []ovsdb.Operation
	if bu, ok := s.portBridge[pu]; ok {
		ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationMutate, Table: "Bridge",
			Where:     []ovsdb.Condition{uuidIs(bu)},
			Mutations: []ovsdb.Mutation{{Column: "ports", Mutator: ovsdb.MutateOperationDelete, Value: ovsdb.OvsSet{GoSet: []any{ovsdb.UUID{GoUUID: pu}}}}},
		})
	}
	// Port and Interface are non-root tables (garbage-collected once
	// unreferenced); deleting them explicitly keeps the intent readable and
	// fails loudly if something else still references them.
	ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationDelete, Table: "Port", Where: []ovsdb.Condition{uuidIs(pu)}})
	if p := s.Ports[pu]; p != nil {
		for _, iu := range p.Interfaces {
			ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationDelete, Table: "Interface", Where: []ovsdb.Condition{uuidIs(iu)}})
		}
	}
	return ops
}

func uuidIs(u string) ovsdb.Condition {
	return ovsdb.NewCondition("_uuid", ovsdb.ConditionEqual, ovsdb.UUID{GoUUID: u})
}

func ovsMap(m map[string]string) ovsdb.OvsMap {
	g := make(map[any]any, len(m))
	for k, v := range m {
		g[k] = v
	}
	return ovsdb.OvsMap{GoMap: g}
}

// Forget drops port name (and its interfaces) from the snapshot, after a
// transaction removed it, so later plans in the same reconcile see it gone
// (the cache may not have caught up yet).
func (s *Snapshot) Forget(name string) {
	pu, ok := s.portByName[name]
	if !ok {
		return
	}
	if p := s.Ports[pu]; p != nil {
		for _, iu := range p.Interfaces {
			if f := s.Interfaces[iu]; f != nil {
				delete(s.ifaceByName, f.Name)
			}
			delete(s.Interfaces, iu)
		}
	}
	if b := s.Bridges[s.portBridge[pu]]; b != nil {
		b.Ports = slices.DeleteFunc(slices.Clone(b.Ports), func(u string) bool { return u == pu })
	}
	delete(s.Ports, pu)
	delete(s.portBridge, pu)
	delete(s.portByName, name)
}

// Replaced names the ports a plug of spec removes: its own previous port and
// stale ports claiming the same iface-id.
func (s *Snapshot) Replaced(spec IfaceSpec) []string {
	var out []string
	if _, ok := s.portByName[spec.Name]; ok {
		out = append(out, spec.Name)
	}
	for _, pu := range s.stale(spec) {
		if p := s.Ports[pu]; p != nil {
			out = append(out, p.Name)
		}
	}
	return out
}
