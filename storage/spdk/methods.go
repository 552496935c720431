package spdk

import (
	"context"
	"fmt"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Typed wrappers of the methods the agent uses. Field names and JSON keys are
// SPDK v24.09's (research/spdk.md §2); pointers and omitempty keep unset
// options out of the request, because SPDK rejects unknown or mistyped keys.

// Version is spdk_get_version's result.
type Version struct {
	Version string `json:"version"`
	Fields  struct {
		Major  int    `json:"major"`
		Minor  int    `json:"minor"`
		Patch  int    `json:"patch"`
		Suffix string `json:"suffix"`
	} `json:"fields"`
}

// GetVersion calls spdk_get_version.
func (c *Client) GetVersion(ctx context.Context) (Version, error) {
	var v Version
	err := c.Call(ctx, "spdk_get_version", nil, &v)
	return v, err
}

// AttachControllerParams are bdev_nvme_attach_controller's parameters.
type AttachControllerParams struct {
	Name                  string `json:"name"`
	Trtype                string `json:"trtype"`
	Traddr                string `json:"traddr"`
	Adrfam                string `json:"adrfam,omitempty"`
	Trsvcid               string `json:"trsvcid,omitempty"`
	Subnqn                string `json:"subnqn,omitempty"`
	Hostnqn               string `json:"hostnqn,omitempty"`
	Multipath             string `json:"multipath,omitempty"`
	CtrlrLossTimeoutSec   *int   `json:"ctrlr_loss_timeout_sec,omitempty"`
	ReconnectDelaySec     *int   `json:"reconnect_delay_sec,omitempty"`
	FastIOFailTimeoutSec  *int   `json:"fast_io_fail_timeout_sec,omitempty"`
	FabricsConnectTimeout *int64 `json:"fabrics_connect_timeout_us,omitempty"`
}

// AttachController calls bdev_nvme_attach_controller and returns the bdev
// names it created ([] when a failover path was added to an existing one).
func (c *Client) AttachController(ctx context.Context, p AttachControllerParams) ([]string, error) {
	var names []string
	err := c.Call(ctx, "bdev_nvme_attach_controller", p, &names)
	return names, err
}

// TransportID is an NVMe transport id as SPDK reports it.
type TransportID struct {
	Trtype  string `json:"trtype"`
	Adrfam  string `json:"adrfam,omitempty"`
	Traddr  string `json:"traddr"`
	Trsvcid string `json:"trsvcid,omitempty"`
	Subnqn  string `json:"subnqn,omitempty"`
}

// NVMeCtrlr is one path (one connected controller) of a bdev_nvme controller.
type NVMeCtrlr struct {
	State          string        `json:"state"`
	Trid           TransportID   `json:"trid"`
	AlternateTrids []TransportID `json:"alternate_trids,omitempty"`
	Cntlid         int           `json:"cntlid"`
	Host           struct {
		NQN   string `json:"nqn"`
		Addr  string `json:"addr"`
		Svcid string `json:"svcid"`
	} `json:"host"`
}

// NVMeController is one entry of bdev_nvme_get_controllers.
type NVMeController struct {
	Name   string      `json:"name"`
	Ctrlrs []NVMeCtrlr `json:"ctrlrs"`
}

// GetControllers calls bdev_nvme_get_controllers; name "" lists all. An
// unknown name gives an error wrapping errdefs.ErrNotFound.
func (c *Client) GetControllers(ctx context.Context, name string) ([]NVMeController, error) {
	var p any
	if name != "" {
		p = map[string]string{"name": name}
	}
	var out []NVMeController
	err := c.Call(ctx, "bdev_nvme_get_controllers", p, &out)
	// v24.09 answers +22 (HEAD -22) for an unknown name.
	if HasCode(err, 22, CodeEINVAL) && name != "" {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return out, err
}

// DetachControllerParams select a whole controller (Name only) or one path.
type DetachControllerParams struct {
	Name    string `json:"name"`
	Trtype  string `json:"trtype,omitempty"`
	Traddr  string `json:"traddr,omitempty"`
	Adrfam  string `json:"adrfam,omitempty"`
	Trsvcid string `json:"trsvcid,omitempty"`
	Subnqn  string `json:"subnqn,omitempty"`
}

// DetachController calls bdev_nvme_detach_controller. A missing controller or
// path (-19, -6) is success: detach is idempotent.
func (c *Client) DetachController(ctx context.Context, p DetachControllerParams) error {
	err := c.Call(ctx, "bdev_nvme_detach_controller", p, nil)
	if HasCode(err, CodeENODEV, CodeENXIO) {
		return nil
	}
	return err
}

// Bdev is the part of bdev_get_bdevs' entries the agent reads.
type Bdev struct {
	Name           string    `json:"name"`
	Aliases        []string  `json:"aliases"`
	ProductName    string    `json:"product_name"`
	BlockSize      int       `json:"block_size"`
	NumBlocks      int64     `json:"num_blocks"`
	UUID           string    `json:"uuid"`
	Claimed        bool      `json:"claimed"`
	RateLimits     QoSLimits `json:"assigned_rate_limits"`
	DriverSpecific struct {
		NVMe []struct {
			Trid   TransportID `json:"trid"`
			NSData struct {
				ID int `json:"id"`
			} `json:"ns_data"`
		} `json:"nvme,omitempty"`
		AIO *struct {
			Filename string `json:"filename"`
		} `json:"aio,omitempty"`
	} `json:"driver_specific"`
}

// GetBdevs calls bdev_get_bdevs; name "" lists all (name may be a uuid
// alias). An unknown name gives an error wrapping errdefs.ErrNotFound.
func (c *Client) GetBdevs(ctx context.Context, name string) ([]Bdev, error) {
	var p any
	if name != "" {
		p = map[string]string{"name": name}
	}
	var out []Bdev
	err := c.Call(ctx, "bdev_get_bdevs", p, &out)
	if HasCode(err, CodeENODEV) {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return out, err
}

// QoSLimits are bdev_set_qos_limit's limits, as bdev_get_bdevs reports them
// in assigned_rate_limits (0 = unlimited).
type QoSLimits struct {
	RwIOsPerSec    uint64 `json:"rw_ios_per_sec"`
	RwMBytesPerSec uint64 `json:"rw_mbytes_per_sec"`
	RMBytesPerSec  uint64 `json:"r_mbytes_per_sec"`
	WMBytesPerSec  uint64 `json:"w_mbytes_per_sec"`
}

// MaxQoSMBytes is the largest MB/s limit SPDK keeps (larger values are
// reset to it: c-qos.jsonl).
const MaxQoSMBytes = 17592186044415

// Effective is what SPDK stores for l: IOPS rounded up to a multiple of 1000
// ("Round up the rate limit", c-qos.jsonl), MB/s clamped. Comparing it with
// assigned_rate_limits tells whether a call is needed.
func (l QoSLimits) Effective() QoSLimits {
	if r := l.RwIOsPerSec % 1000; r != 0 {
		l.RwIOsPerSec += 1000 - r
	}
	l.RwMBytesPerSec = min(l.RwMBytesPerSec, MaxQoSMBytes)
	l.RMBytesPerSec = min(l.RMBytesPerSec, MaxQoSMBytes)
	l.WMBytesPerSec = min(l.WMBytesPerSec, MaxQoSMBytes)
	return l
}

// SetQoSLimit calls bdev_set_qos_limit with all four limits, so the bdev
// ends up with exactly l. SPDK refuses a second call on a bdev while one is
// in progress (-32602), so callers must not overlap calls for one bdev.
func (c *Client) SetQoSLimit(ctx context.Context, bdev string, l QoSLimits) error {
	p := struct {
		Name string `json:"name"`
		QoSLimits
	}{bdev, l}
	return c.Call(ctx, "bdev_set_qos_limit", p, nil)
}

// AIOCreateParams are bdev_aio_create's parameters.
type AIOCreateParams struct {
	Filename  string `json:"filename"`
	Name      string `json:"name"`
	BlockSize int    `json:"block_size,omitempty"`
	Readonly  bool   `json:"readonly,omitempty"`
}

// AIOCreate calls bdev_aio_create and returns the bdev name.
func (c *Client) AIOCreate(ctx context.Context, p AIOCreateParams) (string, error) {
	var name string
	err := c.Call(ctx, "bdev_aio_create", p, &name)
	return name, err
}

// AIODelete calls bdev_aio_delete; a missing bdev (-19) is success.
func (c *Client) AIODelete(ctx context.Context, name string) error {
	err := c.Call(ctx, "bdev_aio_delete", map[string]string{"name": name}, nil)
	if HasCode(err, CodeENODEV) {
		return nil
	}
	return err
}

// Transport is the part of nvmf_get_transports' entries the agent reads.
type Transport struct {
	Trtype string `json:"trtype"`
}

// CreateTransport calls nvmf_create_transport {trtype}.
func (c *Client) CreateTransport(ctx context.Context, trtype string) error {
	return c.Call(ctx, "nvmf_create_transport", map[string]string{"trtype": trtype}, nil)
}

// GetTransports calls nvmf_get_transports.
func (c *Client) GetTransports(ctx context.Context) ([]Transport, error) {
	var out []Transport
	err := c.Call(ctx, "nvmf_get_transports", nil, &out)
	return out, err
}

// CreateSubsystemParams are nvmf_create_subsystem's parameters.
type CreateSubsystemParams struct {
	NQN           string `json:"nqn"`
	SerialNumber  string `json:"serial_number,omitempty"`
	ModelNumber   string `json:"model_number,omitempty"`
	AllowAnyHost  bool   `json:"allow_any_host"`
	MaxNamespaces int    `json:"max_namespaces,omitempty"`
}

// CreateSubsystem calls nvmf_create_subsystem.
func (c *Client) CreateSubsystem(ctx context.Context, p CreateSubsystemParams) error {
	return c.Call(ctx, "nvmf_create_subsystem", p, nil)
}

// DeleteSubsystem calls nvmf_delete_subsystem. SPDK answers a generic -32602
// for an unknown NQN, so callers check nvmf_get_subsystems first.
func (c *Client) DeleteSubsystem(ctx context.Context, nqn string) error {
	return c.Call(ctx, "nvmf_delete_subsystem", map[string]string{"nqn": nqn}, nil)
}

// ListenAddress is an nvmf listener.
type ListenAddress struct {
	Trtype  string `json:"trtype"`
	Adrfam  string `json:"adrfam,omitempty"`
	Traddr  string `json:"traddr"`
	Trsvcid string `json:"trsvcid,omitempty"`
}

// Namespace is an nvmf namespace.
type Namespace struct {
	NSID     int    `json:"nsid,omitempty"`
	BdevName string `json:"bdev_name"`
	Name     string `json:"name,omitempty"`
	NGUID    string `json:"nguid,omitempty"`
	EUI64    string `json:"eui64,omitempty"`
	UUID     string `json:"uuid,omitempty"`
}

// Subsystem is one entry of nvmf_get_subsystems.
type Subsystem struct {
	NQN             string          `json:"nqn"`
	Subtype         string          `json:"subtype"`
	ListenAddresses []ListenAddress `json:"listen_addresses"`
	AllowAnyHost    bool            `json:"allow_any_host"`
	Hosts           []SubsystemHost `json:"hosts,omitempty"`
	SerialNumber    string          `json:"serial_number,omitempty"`
	ModelNumber     string          `json:"model_number,omitempty"`
	MaxNamespaces   int             `json:"max_namespaces,omitempty"`
	Namespaces      []Namespace     `json:"namespaces,omitempty"`
}

// GetSubsystems calls nvmf_get_subsystems; nqn "" lists all. An unknown nqn
// gives an error wrapping errdefs.ErrNotFound.
func (c *Client) GetSubsystems(ctx context.Context, nqn string) ([]Subsystem, error) {
	var p any
	if nqn != "" {
		p = map[string]string{"nqn": nqn}
	}
	var out []Subsystem
	err := c.Call(ctx, "nvmf_get_subsystems", p, &out)
	if HasCode(err, CodeENODEV) {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return out, err
}

// AddNamespace calls nvmf_subsystem_add_ns and returns the nsid.
func (c *Client) AddNamespace(ctx context.Context, nqn string, ns Namespace) (int, error) {
	var nsid int
	err := c.Call(ctx, "nvmf_subsystem_add_ns", struct {
		NQN       string    `json:"nqn"`
		Namespace Namespace `json:"namespace"`
	}{nqn, ns}, &nsid)
	return nsid, err
}

// RemoveNamespace calls nvmf_subsystem_remove_ns.
func (c *Client) RemoveNamespace(ctx context.Context, nqn string, nsid int) error {
	return c.Call(ctx, "nvmf_subsystem_remove_ns", struct {
		NQN  string `json:"nqn"`
		NSID int    `json:"nsid"`
	}{nqn, nsid}, nil)
}

type listenerParams struct {
	NQN           string        `json:"nqn"`
	ListenAddress ListenAddress `json:"listen_address"`
}

// AddListener calls nvmf_subsystem_add_listener.
func (c *Client) AddListener(ctx context.Context, nqn string, la ListenAddress) error {
	return c.Call(ctx, "nvmf_subsystem_add_listener", listenerParams{nqn, la}, nil)
}

// RemoveListener calls nvmf_subsystem_remove_listener.
func (c *Client) RemoveListener(ctx context.Context, nqn string, la ListenAddress) error {
	return c.Call(ctx, "nvmf_subsystem_remove_listener", listenerParams{nqn, la}, nil)
}
