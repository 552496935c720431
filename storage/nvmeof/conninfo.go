// Package nvmeof turns Cinder's NVMe-oF connection info (old and new formats)
// into one validated Target, before anything touches SPDK.
package nvmeof

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// Portal is one network path to the remote target.
type Portal struct {
	Address   string `json:"address"`
	Port      int    `json:"port"`
	Transport string `json:"transport"` // "tcp" or "rdma" (SPDK trtype is the upper-case form)
}

// Target is the normalised remote volume.
type Target struct {
	NQN         string   `json:"target_nqn"`
	Portals     []Portal `json:"portals"`
	VolUUID     string   `json:"vol_uuid,omitempty"`
	VolumeNGUID string   `json:"volume_nguid,omitempty"`
	NSID        int      `json:"ns_id,omitempty"`
	HostNQN     string   `json:"host_nqn,omitempty"`
	// QoS is from qos_specs (Cinder front-end QoS); nil: none.
	QoS *spdk.QoSLimits `json:"qos,omitempty"`
}

// nqnRe follows NVMe base spec 4.5: "nqn.yyyy-mm.reverse-domain:anything" or the
// UUID form, at most 223 bytes.
var nqnRe = regexp.MustCompile(`^nqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:.+)?$`)

// ValidNQN reports whether s is a well-formed NQN.
func ValidNQN(s string) bool {
	return len(s) <= 223 && nqnRe.MatchString(s)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, fmt.Sprintf(format, a...))
}

// Parse normalises the "data" member of Cinder's connection_info for
// driver_volume_type "nvmeof". Keys follow os-brick's NVMeOFConnProps.
func Parse(data map[string]any) (Target, error) {
	var t Target
	str := func(k string) (string, error) {
		v, ok := data[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", invalid("connection_info.data.%s must be a string", k)
		}
		return s, nil
	}
	var err error
	if t.NQN, err = str("target_nqn"); err != nil {
		return t, err
	}
	if t.NQN == "" {
		if t.NQN, err = str("nqn"); err != nil {
			return t, err
		}
	}
	if t.NQN == "" {
		return t, invalid("connection_info.data has no target_nqn (or nqn)")
	}
	if !ValidNQN(t.NQN) {
		return t, invalid("target NQN %q is not a valid NQN", t.NQN)
	}
	if t.VolUUID, err = str("vol_uuid"); err != nil {
		return t, err
	}
	if t.VolumeNGUID, err = str("volume_nguid"); err != nil {
		return t, err
	}
	if t.HostNQN, err = str("host_nqn"); err != nil {
		return t, err
	}
	if t.HostNQN != "" && !ValidNQN(t.HostNQN) {
		return t, invalid("host_nqn %q is not a valid NQN", t.HostNQN)
	}
	if v, ok := data["ns_id"]; ok && v != nil {
		n, err := toInt(v)
		if err != nil || n < 1 || n > 0xFFFFFFFE {
			return t, invalid("ns_id %v is not a valid namespace id", v)
		}
		t.NSID = n
	}

	if raw, ok := data["portals"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return t, invalid("connection_info.data.portals must be a list")
		}
		for i, p := range list {
			tuple, ok := p.([]any)
			if !ok || len(tuple) != 3 {
				return t, invalid("portals[%d] must be [address, port, transport]", i)
			}
			portal, err := newPortal(tuple[0], tuple[1], tuple[2])
			if err != nil {
				return t, fmt.Errorf("portals[%d]: %w", i, err)
			}
			t.Portals = append(t.Portals, portal)
		}
	} else if _, ok := data["target_portal"]; ok {
		portal, err := newPortal(data["target_portal"], data["target_port"], data["transport_type"])
		if err != nil {
			return t, err
		}
		t.Portals = append(t.Portals, portal)
	}
	if len(t.Portals) == 0 {
		return t, invalid("connection_info.data has no portals (or target_portal)")
	}
	seen := map[Portal]bool{}
	for _, p := range t.Portals {
		if seen[p] {
			return t, invalid("portal %s:%d/%s listed twice", p.Address, p.Port, p.Transport)
		}
		seen[p] = true
	}
	t.QoS, err = ParseQoS(data)
	return t, err
}

func newPortal(addr, port, transport any) (Portal, error) {
	a, ok := addr.(string)
	if !ok || a == "" {
		return Portal{}, invalid("portal address missing")
	}
	if net.ParseIP(a) == nil && !validHostname(a) {
		return Portal{}, invalid("portal address %q is neither an IP address nor a host name", a)
	}
	p, err := toInt(port)
	if err != nil || p < 1 || p > 65535 {
		return Portal{}, invalid("portal port %v must be 1..65535", port)
	}
	tr := "tcp"
	if transport != nil {
		s, ok := transport.(string)
		if !ok {
			return Portal{}, invalid("transport must be a string")
		}
		switch strings.ToLower(s) {
		case "tcp", "nvmet_tcp":
			tr = "tcp"
		case "rdma", "rocev2", "nvmet_rdma":
			tr = "rdma"
		default:
			return Portal{}, invalid("unknown NVMe-oF transport %q (want tcp or rdma)", s)
		}
	}
	return Portal{Address: a, Port: p, Transport: tr}, nil
}

var hostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func validHostname(s string) bool { return len(s) <= 253 && hostRe.MatchString(s) }

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		return int(n), err
	case float64:
		if x != float64(int64(x)) {
			return 0, fmt.Errorf("not an integer")
		}
		return int(x), nil
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case string:
		n, err := strconv.Atoi(x)
		return n, err
	}
	return 0, fmt.Errorf("not a number")
}
