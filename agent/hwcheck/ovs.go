package hwcheck

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/oneshot"
)

// Bridge is one OVS bridge and the names of its ports.
type Bridge struct {
	Name  string   `json:"name"`
	Ports []string `json:"ports"`
}

// OVSView is what the DPU's Open vSwitch holds, read with one select.
type OVSView struct {
	Bridges []Bridge `json:"bridges"`
}

// BridgeOf returns the bridge holding port name, or "".
func (v OVSView) BridgeOf(name string) string {
	for _, b := range v.Bridges {
		for _, p := range b.Ports {
			if p == name {
				return b.Name
			}
		}
	}
	return ""
}

// Bridge returns the named bridge, or nil.
func (v OVSView) Bridge(name string) *Bridge {
	for i := range v.Bridges {
		if v.Bridges[i].Name == name {
			return &v.Bridges[i]
		}
	}
	return nil
}

// ReadOVS selects Bridge and Port rows from the OVSDB at endpoint (unix:PATH,
// tcp:HOST:PORT or ssl:HOST:PORT with tc) in one read-only transaction.
func ReadOVS(ctx context.Context, endpoint string, tc *tls.Config) (OVSView, error) {
	network, addr, secure, err := oneshot.OVSDBAddr(endpoint)
	if err != nil {
		return OVSView{}, err
	}
	if secure != (tc != nil) {
		return OVSView{}, fmt.Errorf("ovsdb %s: a TLS config is needed with ssl: and only then", endpoint)
	}
	res, err := oneshot.CallTLS(ctx, network, addr, tc, map[string]any{"id": 1, "method": "transact", "params": []any{
		"Open_vSwitch",
		map[string]any{"op": "select", "table": "Bridge", "where": []any{}, "columns": []string{"name", "ports"}},
		map[string]any{"op": "select", "table": "Port", "where": []any{}, "columns": []string{"_uuid", "name"}},
	}})
	if err != nil {
		return OVSView{}, err
	}
	var out []struct {
		Rows  []map[string]json.RawMessage `json:"rows"`
		Error string                       `json:"error"`
	}
	if err := json.Unmarshal(res, &out); err != nil || len(out) != 2 {
		return OVSView{}, fmt.Errorf("unexpected OVSDB select result %s", res)
	}
	for _, o := range out {
		if o.Error != "" {
			return OVSView{}, fmt.Errorf("OVSDB select: %s", o.Error)
		}
	}
	portName := map[string]string{}
	for _, r := range out[1].Rows {
		var name string
		uuids, err := ovsdbUUIDs(r["_uuid"])
		if err != nil || len(uuids) != 1 || json.Unmarshal(r["name"], &name) != nil {
			return OVSView{}, fmt.Errorf("unexpected OVSDB Port row")
		}
		portName[uuids[0]] = name
	}
	var v OVSView
	for _, r := range out[0].Rows {
		var b Bridge
		if err := json.Unmarshal(r["name"], &b.Name); err != nil {
			return OVSView{}, fmt.Errorf("unexpected OVSDB Bridge row: %w", err)
		}
		uuids, err := ovsdbUUIDs(r["ports"])
		if err != nil {
			return OVSView{}, err
		}
		for _, u := range uuids {
			b.Ports = append(b.Ports, portName[u])
		}
		sort.Strings(b.Ports)
		v.Bridges = append(v.Bridges, b)
	}
	sort.Slice(v.Bridges, func(i, j int) bool { return v.Bridges[i].Name < v.Bridges[j].Name })
	return v, nil
}

// ovsdbUUIDs decodes an OVSDB <uuid> or <set> of uuids (RFC 7047 §5.1):
// ["uuid","..."] or ["set",[["uuid","..."],...]].
func ovsdbUUIDs(raw json.RawMessage) ([]string, error) {
	var pair [2]json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil {
		return nil, fmt.Errorf("OVSDB value %s: %w", raw, err)
	}
	var tag string
	if err := json.Unmarshal(pair[0], &tag); err != nil {
		return nil, fmt.Errorf("OVSDB value %s: %w", raw, err)
	}
	switch tag {
	case "uuid":
		var u string
		if err := json.Unmarshal(pair[1], &u); err != nil {
			return nil, err
		}
		return []string{u}, nil
	case "set":
		var elems [][2]string
		if err := json.Unmarshal(pair[1], &elems); err != nil {
			return nil, fmt.Errorf("OVSDB set %s: %w", raw, err)
		}
		out := make([]string, 0, len(elems))
		for _, e := range elems {
			out = append(out, e[1])
		}
		return out, nil
	}
	return nil, fmt.Errorf("OVSDB value %s: not a uuid or set", raw)
}
