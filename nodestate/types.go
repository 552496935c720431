// Package nodestate holds the node's desired state (the contract between the
// conductor and the agent, DESIGN.md §2), its validation, and the observed
// state that reconcilers report. It imports nothing of the agent, storage or
// network, so all of them share these types without a cycle between folders.
// The durable store of the desired state is agent/state.
package nodestate

import (
	"bytes"
	"encoding/json"
)

// ConnectionInfo is Cinder's connection_info as Nova/Ironic hand it over.
type ConnectionInfo struct {
	DriverVolumeType string         `json:"driver_volume_type"`
	Data             map[string]any `json:"data"`
}

// Volume is a Cinder volume the host must see as an NVMe namespace.
type Volume struct {
	VolumeID string `json:"volume_id"`
	// BootIndex 0 is the boot disk; absent or negative (Nova's -1) is a
	// data disk.
	BootIndex      *int           `json:"boot_index,omitempty"`
	ConnectionInfo ConnectionInfo `json:"connection_info"`
	// Function is the host function whose NVMe controller carries the
	// namespace; nil means PF 0 (the boot controller).
	Function *Function `json:"function,omitempty"`
}

// VIF is a Neutron port the host must see as a NIC.
type VIF struct {
	PortID string `json:"port_id"`
	MAC    string `json:"mac"`
	// Function is the host function backing the NIC. A nil Function on input
	// asks the agent to allocate an SF; the stored state always has one.
	Function *Function `json:"function,omitempty"`
	MTU      int       `json:"mtu,omitempty"`
}

// ConfigDrive is the instance's config-drive ISO, exposed read-only to the
// host. SHA256 and Size are those of the ISO itself (decompressed,
// unpadded), whichever way it travels. Since RPC API 1.2 the agent fetches
// it from URL (http or https; the body is the gzip'd or raw ISO) in the
// storage reconcile. Data (base64 of the gzip'd or raw ISO, what conductors
// before 1.2 send) is only in transit: the agent writes the image to a file
// at admission and persists SHA256 alone. With neither, the agent must
// already hold the image.
type ConfigDrive struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
	URL    string `json:"url,omitempty"`
	Data   string `json:"data,omitempty"`
}

// Desired is everything the node should have.
type Desired struct {
	Generation  int64        `json:"generation"`
	NodeUUID    string       `json:"node_uuid,omitempty"`
	Volumes     []Volume     `json:"volumes"`
	VIFs        []VIF        `json:"vifs"`
	ConfigDrive *ConfigDrive `json:"config_drive,omitempty"`
}

// Clone returns a deep copy, so callers can edit without touching the
// agent's current state.
func (d *Desired) Clone() *Desired {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // Desired is plain data; marshal cannot fail
	}
	var c Desired
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		panic(err)
	}
	if c.Volumes == nil {
		c.Volumes = []Volume{}
	}
	if c.VIFs == nil {
		c.VIFs = []VIF{}
	}
	return &c
}

// Observed is what the reconcilers last saw on the DPU.
type Observed struct {
	Volumes     []VolumeStatus     `json:"volumes"`
	VIFs        []VIFStatus        `json:"vifs"`
	ConfigDrive *ConfigDriveStatus `json:"config_drive,omitempty"`
	// Generation is the desired generation the last completed reconcile of
	// every component used (the minimum over components; 0 before the
	// first). A caller has converged on G when Generation >= G and no item
	// is pending or in error.
	Generation int64 `json:"generation"`
	// Components is each component's last completed reconcile: a failure
	// that no item shows (SPDK down while removing a volume) is here.
	Components map[string]ComponentObserved `json:"components,omitempty"`
	// Quiesce is whether the host's controllers are paused (RPC API 1.3;
	// absent when the agent has no quiesce support wired).
	Quiesce *QuiesceStatus `json:"quiesce,omitempty"`
}

// ComponentObserved is one component's last completed reconcile.
type ComponentObserved struct {
	Generation int64  `json:"generation"`
	LastError  string `json:"last_error,omitempty"`
}

// ConfigDriveStatus is the observed state of the config drive.
type ConfigDriveStatus struct {
	SHA256    string `json:"sha256"`
	State     string `json:"state"`
	NSID      int    `json:"nsid,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Item states shown in VolumeStatus.State and VIFStatus.State.
const (
	StateAttached = "attached" // volume exposed to the host
	StatePlugged  = "plugged"  // VIF on br-int and bound by OVN
	StatePending  = "pending"  // in progress (e.g. waiting for ovn-installed)
	StateError    = "error"    // last attempt failed; see LastError
)

// PathStatus is one NVMe-oF path of a backend controller.
type PathStatus struct {
	Transport string `json:"transport"`
	Address   string `json:"address"`
	Port      string `json:"port"`
	State     string `json:"state"`
}

// VolumeStatus is the observed state of one volume.
type VolumeStatus struct {
	VolumeID   string       `json:"volume_id"`
	State      string       `json:"state"`
	Controller string       `json:"controller,omitempty"`
	Bdev       string       `json:"bdev,omitempty"`
	Paths      []PathStatus `json:"paths,omitempty"`
	Function   *Function    `json:"function,omitempty"`
	NSID       int          `json:"nsid,omitempty"`
	// SizeBytes is what the DPU's bdev reports (num_blocks*block_size).
	SizeBytes int64 `json:"size_bytes,omitempty"`
	// QoS is the limits SPDK holds on the bdev (bdev_set_qos_limit names).
	QoS       *QoSLimits `json:"qos,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// VIFStatus is the observed state of one VIF.
type VIFStatus struct {
	PortID      string    `json:"port_id"`
	State       string    `json:"state"`
	Representor string    `json:"representor,omitempty"`
	Function    *Function `json:"function,omitempty"`
	OFPort      int       `json:"ofport,omitempty"`
	Bound       bool      `json:"bound"`
	// MAC is the MAC the DPU gave the host function (what the host's NIC
	// carries), as the DPU driver reads it now; empty when the driver cannot
	// tell (a host PF, a driver without the read). Added without an RPC API
	// bump: an output field older conductors ignore.
	MAC       string `json:"mac,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// QoSLimits are the rate limits SPDK holds on a volume's bdev, with SPDK's
// names (bdev_get_bdevs assigned_rate_limits); 0 = unlimited.
type QoSLimits struct {
	RwIOsPerSec    uint64 `json:"rw_ios_per_sec"`
	RwMBytesPerSec uint64 `json:"rw_mbytes_per_sec"`
	RMBytesPerSec  uint64 `json:"r_mbytes_per_sec"`
	WMBytesPerSec  uint64 `json:"w_mbytes_per_sec"`
}
