package nodestate

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Bounds on host functions. Drivers narrow these further (e.g. how many PFs a
// card has); these only keep nonsense out of the stored state.
const (
	MaxPF  = 15
	MaxVF  = 1023
	MaxSF  = 65535
	MinMTU = 68
	MaxMTU = 9216
)

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// ValidUUID accepts the forms OpenStack accepts (dashed or not).
func ValidUUID(s string) bool { return uuidRe.MatchString(s) }

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, fmt.Sprintf(format, a...))
}

// ValidateFunction checks the generic bounds of a host function.
func ValidateFunction(f Function) error {
	if f.PF < 0 || f.PF > MaxPF {
		return invalid("function pf %d out of range 0..%d", f.PF, MaxPF)
	}
	if f.VF != nil && f.SF != nil {
		return invalid("function may name a vf or an sf, not both")
	}
	if f.VF != nil && (*f.VF < 0 || *f.VF > MaxVF) {
		return invalid("function vf %d out of range 0..%d", *f.VF, MaxVF)
	}
	if f.SF != nil && (*f.SF < 0 || *f.SF > MaxSF) {
		return invalid("function sf %d out of range 0..%d", *f.SF, MaxSF)
	}
	return nil
}

// ValidateMAC accepts a unicast, non-zero 48-bit MAC in colon form: a NIC
// with 00:00:00:00:00:00 or a group address cannot take part in OVN's
// port security or ARP responder, so the host would silently get no traffic.
func ValidateMAC(s string) error {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || strings.Count(s, ":") != 5 {
		return invalid("mac %q is not a 48-bit MAC address like fa:16:3e:00:00:01", s)
	}
	switch {
	case bytes.Equal(hw, make(net.HardwareAddr, 6)):
		return invalid("mac %q is the all-zero address", s)
	case bytes.Equal(hw, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}):
		return invalid("mac %q is the broadcast address", s)
	case hw[0]&1 == 1:
		return invalid("mac %q is a multicast address", s)
	}
	return nil
}

// Default limits of one desired state (see Limits).
const (
	// DefaultMaxVIFs: a bare-metal host has a handful of NICs; 64 leaves
	// room for trunk-less multi-port designs while keeping a flood (20,000
	// ports) from ever being persisted or plugged.
	DefaultMaxVIFs = 64
	// DefaultMaxVolumes: the host PF's NVMe subsystem is created with
	// max_namespaces 32 on SNAP and the usual SPDK setups, so more volumes
	// could never all be exposed.
	DefaultMaxVolumes = 32
)

// Limits bound the size of one desired state; zero fields take the defaults.
type Limits struct {
	MaxVIFs    int
	MaxVolumes int
}

// CheckLimits refuses a state with more VIFs or volumes than l allows. It is
// cheap (counts only), so callers run it before any per-item validation.
func (d *Desired) CheckLimits(l Limits) error {
	if l.MaxVIFs <= 0 {
		l.MaxVIFs = DefaultMaxVIFs
	}
	if l.MaxVolumes <= 0 {
		l.MaxVolumes = DefaultMaxVolumes
	}
	if n := len(d.VIFs); n > l.MaxVIFs {
		return invalid("%d vifs exceed the limit of %d per node ([agent] max_vifs)", n, l.MaxVIFs)
	}
	if n := len(d.Volumes); n > l.MaxVolumes {
		return invalid("%d volumes exceed the limit of %d per node ([agent] max_volumes)", n, l.MaxVolumes)
	}
	return nil
}

// Normalize puts d in its stored form: MACs lower-case, as Neutron and OVN
// write them (ovn-controller compares them as strings).
func (d *Desired) Normalize() {
	for i := range d.VIFs {
		d.VIFs[i].MAC = strings.ToLower(d.VIFs[i].MAC)
	}
}

// ConnectionChecker checks one volume's Cinder connection info.
type ConnectionChecker func(Volume) error

// ValidateVolume checks one volume's shape. This package knows no storage
// protocol: callers pass the parser of its Cinder connection info to
// ValidateVolumeWith.
func ValidateVolume(v Volume) error { return ValidateVolumeWith(v, nil) }

// ValidateVolumeWith is ValidateVolume with conn checking the connection info.
func ValidateVolumeWith(v Volume, conn ConnectionChecker) error {
	if !ValidUUID(v.VolumeID) {
		return invalid("volume_id %q is not a UUID", v.VolumeID)
	}
	if v.ConnectionInfo.DriverVolumeType != "nvmeof" {
		return invalid("volume %s: driver_volume_type %q is not supported (want nvmeof)", v.VolumeID, v.ConnectionInfo.DriverVolumeType)
	}
	if conn != nil {
		if err := conn(v); err != nil {
			return fmt.Errorf("volume %s: %w", v.VolumeID, err)
		}
	}
	if v.Function != nil {
		if err := ValidateFunction(*v.Function); err != nil {
			return fmt.Errorf("volume %s: %w", v.VolumeID, err)
		}
		if v.Function.IsSF() {
			return invalid("volume %s: NVMe emulation is on a PF or VF, not an SF", v.VolumeID)
		}
	}
	return nil
}

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidateConfigDrive checks the form of a config drive (nil = none); its
// data is decoded and checked against the sha256 by the storage reconciler.
func ValidateConfigDrive(c *ConfigDrive) error {
	if c == nil {
		return nil
	}
	if !sha256Re.MatchString(c.SHA256) {
		return invalid("config_drive.sha256 %q is not a lower-case hex SHA-256", c.SHA256)
	}
	if c.URL == "" {
		if c.Size != 0 {
			return invalid("config_drive.size without config_drive.url")
		}
		return nil
	}
	if c.Data != "" {
		return invalid("config_drive has both url and data")
	}
	if c.Size <= 0 {
		return invalid("config_drive.url needs config_drive.size (the ISO's size in bytes), got %d", c.Size)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// The URL may hold a secret (a token in its path, a temp URL's
		// signature): name its scheme only.
		return invalid("config_drive.url is not an http(s) URL with a host and no user info (%s)", RedactURL(c.URL))
	}
	return nil
}

// RedactURL is what may be logged of a config-drive URL: scheme and host.
// Its path and query are left out, since either may be the secret that
// grants access (a random file name under the conductor's HTTP root, a
// Swift temp URL's signature), as is any user info.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "<unparsable URL>"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

// ValidateVIF checks one VIF. A nil function is allowed (allocated later).
func ValidateVIF(v VIF) error {
	if !ValidUUID(v.PortID) {
		return invalid("port_id %q is not a UUID", v.PortID)
	}
	if err := ValidateMAC(v.MAC); err != nil {
		return fmt.Errorf("vif %s: %w", v.PortID, err)
	}
	if v.MTU != 0 && (v.MTU < MinMTU || v.MTU > MaxMTU) {
		return invalid("vif %s: mtu %d out of range %d..%d", v.PortID, v.MTU, MinMTU, MaxMTU)
	}
	if v.Function != nil {
		if err := ValidateFunction(*v.Function); err != nil {
			return fmt.Errorf("vif %s: %w", v.PortID, err)
		}
	}
	return nil
}

// Validate checks a whole desired state's shape. It has no side effects and
// leaves the volumes' connection info to the storage reconciler.
func (d *Desired) Validate() error { return d.ValidateWith(nil) }

// ValidateWith is Validate with conn checking each volume's connection info
// (the storage reconciler passes one that reuses what it parsed before).
func (d *Desired) ValidateWith(conn ConnectionChecker) error {
	if d.Generation < 0 {
		return invalid("generation %d is negative", d.Generation)
	}
	if d.NodeUUID != "" && !ValidUUID(d.NodeUUID) {
		return invalid("node_uuid %q is not a UUID", d.NodeUUID)
	}
	vols := map[string]bool{}
	boots := map[int]string{}
	for _, v := range d.Volumes {
		if err := ValidateVolumeWith(v, conn); err != nil {
			return err
		}
		id := strings.ToLower(v.VolumeID)
		if vols[id] {
			return invalid("volume %s listed twice", v.VolumeID)
		}
		vols[id] = true
		if v.BootIndex != nil && *v.BootIndex >= 0 { // every data disk may say -1
			if other, dup := boots[*v.BootIndex]; dup {
				return invalid("boot_index %d used by volumes %s and %s", *v.BootIndex, other, v.VolumeID)
			}
			boots[*v.BootIndex] = v.VolumeID
		}
	}
	if err := ValidateConfigDrive(d.ConfigDrive); err != nil {
		return err
	}
	ports := map[string]bool{}
	macs := map[string]string{}
	var fns []VIF
	for _, v := range d.VIFs {
		if err := ValidateVIF(v); err != nil {
			return err
		}
		id := strings.ToLower(v.PortID)
		if ports[id] {
			return invalid("port %s listed twice", v.PortID)
		}
		ports[id] = true
		mac := strings.ToLower(v.MAC)
		if other, dup := macs[mac]; dup {
			return invalid("mac %s used by ports %s and %s", v.MAC, other, v.PortID)
		}
		macs[mac] = v.PortID
		if v.Function != nil {
			for _, o := range fns {
				if o.Function.Equal(*v.Function) {
					return invalid("ports %s and %s use the same host function", o.PortID, v.PortID)
				}
			}
			fns = append(fns, v)
		}
	}
	return nil
}

// AssignFunctions gives every VIF without a function an SF on PF 0: the one it
// had in prev (so a port keeps its NIC across updates), else the lowest SF
// number >= sfBase not used by another VIF. It edits next in place.
func AssignFunctions(prev, next *Desired, sfBase int) error {
	used := map[int]bool{}
	for _, v := range next.VIFs {
		if v.Function != nil && v.Function.SF != nil && v.Function.PF == 0 {
			used[*v.Function.SF] = true
		}
	}
	had := map[string]Function{}
	if prev != nil {
		for _, v := range prev.VIFs {
			if v.Function != nil {
				had[strings.ToLower(v.PortID)] = *v.Function
			}
		}
	}
	// Kept SFs first: a new port listed before an existing one must not
	// take its SF (that would move a running host's NIC).
	for i := range next.VIFs {
		v := &next.VIFs[i]
		if v.Function != nil {
			continue
		}
		if f, ok := had[strings.ToLower(v.PortID)]; ok && f.IsSF() && f.PF == 0 && !used[*f.SF] {
			f := f
			v.Function = &f
			used[*f.SF] = true
		}
	}
	for i := range next.VIFs {
		v := &next.VIFs[i]
		if v.Function != nil {
			continue
		}
		n := sfBase
		for used[n] {
			n++
		}
		if n > MaxSF {
			return invalid("no free SF number left for port %s", v.PortID)
		}
		used[n] = true
		v.Function = &Function{PF: 0, SF: IntPtr(n)}
	}
	return nil
}
