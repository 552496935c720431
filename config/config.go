// Package config loads the agent's oslo.config-style INI files
// (--config-file, repeatable, later wins; then --config-dir/*.conf in name
// order) into a typed Config, and writes the sample file from the same table.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Config is every option the agent reads. Each field's tags give its INI
// name, default and help; Sample() renders them.
type Config struct {
	Default DefaultOpts `group:"DEFAULT"`
	Rabbit  RabbitOpts  `group:"oslo_messaging_rabbit"`
	Agent   AgentOpts   `group:"agent"`
	DPU     DPUOpts     `group:"dpu"`
	OVS     OVSOpts     `group:"ovs"`
	SPDK    SPDKOpts    `group:"spdk"`
	Storage StorageOpts `group:"storage"`
	NVMf    NVMfOpts    `group:"spdk_nvmf"`
}

// DefaultOpts is [DEFAULT].
type DefaultOpts struct {
	TransportURL      string        `ini:"transport_url" default:"rabbit://" secret:"true" help:"oslo.messaging transport URL: rabbit://user:pass@host:port[,user:pass@host2:port2]/vhost[?option=value]. Query options override [oslo_messaging_rabbit]."`
	NodeUUID          string        `ini:"node_uuid" help:"UUID of the Ironic node whose DPU this agent runs on. The RPC server listens as <topic>.<node_uuid>."`
	StateDir          string        `ini:"state_dir" default:"/var/lib/ironic-dpu-agent" help:"Directory for the persisted desired state."`
	ReconcileInterval time.Duration `ini:"reconcile_interval" default:"60s" help:"Period of the background reconcile (jittered by up to 20%)."`
	HealthInterval    time.Duration `ini:"health_interval" default:"5s" help:"How often SPDK and OVSDB reachability is probed; a component that comes back triggers a reconcile at once."`
	RetryBase         time.Duration `ini:"retry_base" default:"1s" help:"First retry delay after a failed reconcile of a component; it doubles per consecutive failure up to reconcile_interval, with jitter."`
	ItemWait          time.Duration `ini:"item_wait" default:"20s" help:"How long attach_volume/detach_volume/plug_vif/unplug_vif wait for their own component (storage or network, never the other) to converge before answering with the item pending. apply_state never waits."`
	HealthListen      string        `ini:"health_listen" default:"" help:"host:port of the HTTP endpoint: /livez (the agent's loops are alive), /readyz (broker, SPDK and OVSDB reachable; /healthz is the same, kept for older probes) and /metrics. Empty disables it."`
	LivenessTimeout   time.Duration `ini:"liveness_timeout" default:"300s" help:"A reconcile loop or the RPC server loop that makes no progress for longer than this is stuck: /livez answers 503 naming it and the systemd watchdog is no longer fed (systemd restarts the agent). Keep it above the longest legitimate reconcile (several [spdk] rpc_timeout against a wedged SPDK)."`
	Debug             bool          `ini:"debug" default:"false" help:"Log at debug level."`
}

// RabbitOpts is [oslo_messaging_rabbit]; names and defaults are oslo.messaging 14's.
type RabbitOpts struct {
	AMQPDurableQueues        bool    `ini:"amqp_durable_queues" default:"false" help:"Use durable queues and exchanges (oslo amqp_durable_queues)."`
	AMQPAutoDelete           bool    `ini:"amqp_auto_delete" deprecated:"DEFAULT/amqp_auto_delete" default:"false" help:"Auto-delete queues and exchanges (oslo amqp_auto_delete)."`
	RabbitQuorumQueue        bool    `ini:"rabbit_quorum_queue" default:"false" help:"Declare the server queues as quorum queues (implies durable)."`
	RabbitHAQueues           bool    `ini:"rabbit_ha_queues" deprecated:"DEFAULT/rabbit_ha_queues" default:"false" help:"Add x-ha-policy=all to the queues (classic mirrored queues)."`
	RabbitTransientQueuesTTL int     `ini:"rabbit_transient_queues_ttl" default:"1800" help:"x-expires (seconds) of the fanout and reply queues; 0 disables it."`
	SSL                      bool    `ini:"ssl" deprecated:"rabbit_use_ssl" default:"false" help:"Connect over TLS (amqps)."`
	SSLVersion               string  `ini:"ssl_version" deprecated:"kombu_ssl_version" default:"" help:"TLS protocol, oslo's spellings: empty or SSLv23 negotiates (TLS 1.2 or newer here), TLSv1_2 pins TLS 1.2. TLSv1, TLSv1_1, SSLv2 and SSLv3 are refused: the agent speaks no TLS below 1.2."`
	SSLCAFile                string  `ini:"ssl_ca_file" deprecated:"kombu_ssl_ca_certs" default:"" help:"CA bundle to verify the broker."`
	SSLCertFile              string  `ini:"ssl_cert_file" deprecated:"kombu_ssl_certfile" default:"" help:"Client certificate for TLS."`
	SSLKeyFile               string  `ini:"ssl_key_file" deprecated:"kombu_ssl_keyfile" default:"" help:"Client key for TLS."`
	SSLEnforceHostname       bool    `ini:"ssl_enforce_hostname_verification" default:"false" help:"Verify the broker's certificate host name."`
	HeartbeatTimeout         int     `ini:"heartbeat_timeout_threshold" default:"60" help:"AMQP heartbeat timeout in seconds (0 disables heartbeats)."`
	RetryInterval            float64 `ini:"rabbit_retry_interval" default:"1" help:"Seconds before the first reconnect attempt."`
	RetryBackoff             float64 `ini:"rabbit_retry_backoff" deprecated:"DEFAULT/rabbit_retry_backoff" default:"2" help:"Seconds added to the reconnect delay after each failure (jittered)."`
	IntervalMax              float64 `ini:"rabbit_interval_max" default:"30" help:"Upper bound of the reconnect delay in seconds."`
	KombuFailoverStrategy    string  `ini:"kombu_failover_strategy" default:"round-robin" help:"How the next broker of a multi-host transport_url is chosen when the current one is lost: round-robin (the next in the list) or shuffle (a random one each time). As in oslo.messaging, the list is shuffled once per connection first, so a fleet spreads over the brokers instead of all starting on the first."`
	QosPrefetchCount         int     `ini:"rabbit_qos_prefetch_count" default:"8" help:"AMQP basic.qos prefetch count of each consumer: how many requests the broker pushes before they are taken. Bounds the agent's memory under a flood (each request may be up to [agent] max_message_bytes). oslo's default is 0 (unlimited); 0 here means unlimited too."`
}

// AgentOpts is [agent].
type AgentOpts struct {
	Exchange          string `ini:"exchange" default:"ironic_dpu" help:"Control exchange of the agent's RPC. Never the conductor's own exchange with other flags."`
	Topic             string `ini:"topic" default:"ironic-dpu-agent" help:"RPC topic; the server queue is <topic>.<node_uuid>."`
	ListenSharedTopic bool   `ini:"listen_shared_topic" default:"false" help:"Also consume the shared <topic> queue (load-balanced across all agents; usually wrong)."`
	SFBase            int    `ini:"sf_base" default:"1" help:"Lowest SF number the agent allocates for a VIF that names no host function."`
	MaxVIFs           int    `ini:"max_vifs" default:"64" help:"Most VIFs one desired state may hold; a larger state (or a plug_vif beyond it) is refused with InvalidParameterValue before anything is persisted or plugged. A bare-metal host has a handful of NICs."`
	MaxVolumes        int    `ini:"max_volumes" default:"32" help:"Most volumes one desired state may hold (refused like max_vifs). 32 is the max_namespaces of the host PF's NVMe subsystem on SNAP and usual SPDK setups, so more could never all be exposed."`
	MaxMessageBytes   int    `ini:"max_message_bytes" default:"1048576" help:"Largest RPC request body accepted (default 1 MiB); a larger one is answered with InvalidParameterValue without being parsed. Since RPC API 1.2 the config drive is fetched by URL, not carried in apply_state, so a request is the volumes, VIFs and the oslo envelope: tens of KiB. A conductor older than 1.2 (or capped below it) sends the config drive inline as base64: during such an upgrade window raise this to 4/3 * [storage] config_drive_max_bytes + 1 MiB (90527064 for 64 MiB), or its larger drives are refused. The broker's own max_message_size must be at least this."`
}

// DPUOpts is [dpu].
type DPUOpts struct {
	Driver      string `ini:"driver" default:"sim" help:"DPU driver: bluefield, spdk-generic or sim."`
	PFs         int    `ini:"pfs" default:"2" help:"Number of host PFs of the card (a BlueField-2/3 has 2). A VIF or volume naming a PF outside 0..pfs-1 is refused at admission. The bluefield driver also requires the PF's representor in sysfs; its volumes ignore this: their NVMe functions are those SNAP's emulation_function_list reports."`
	MaxVFsPerPF int    `ini:"max_vfs_per_pf" default:"127" help:"Number of VFs each host PF may have (BlueField firmware NUM_OF_VFS, at most 127 on BlueField-2); a function naming vf >= this is refused at admission. 0 refuses VFs. The bluefield driver's volumes ignore this: SNAP lists the NVMe VFs the host has enabled."`
}

// OVSOpts is [ovs]; names follow Neutron's.
type OVSOpts struct {
	OVSDBConnection   string        `ini:"ovsdb_connection" default:"unix:/var/run/openvswitch/db.sock" help:"OVSDB server of the DPU's Open vSwitch: unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT (IPv6 as [ADDR])."`
	SSLKeyFile        string        `ini:"ssl_key_file" default:"" help:"Private key (PEM) the agent presents to an ssl: ovsdb_connection, as Neutron's OVS agent names it (ovs-vsctl/ovn-controller: --private-key). Required with ssl:."`
	SSLCertFile       string        `ini:"ssl_cert_file" default:"" help:"Certificate (PEM) for ssl_key_file (ovn-controller: --certificate). Required with ssl:."`
	SSLCACertFile     string        `ini:"ssl_ca_cert_file" default:"" help:"CA certificate(s) (PEM) the OVSDB server's certificate must chain to (ovn-controller: --ca-cert); as in OVS, the host name is not checked. Required with ssl:."`
	IntegrationBridge string        `ini:"integration_bridge" default:"br-int" help:"The OVN integration bridge."`
	BindTimeout       time.Duration `ini:"bind_timeout" default:"10s" help:"How long plug_vif waits for ovn-installed before answering pending."`
	SysfsRoot         string        `ini:"sysfs_root" default:"/sys" help:"Root of sysfs for representor lookup (tests use a fake tree)."`
}

// SPDKOpts is [spdk].
type SPDKOpts struct {
	RPCSocket  string        `ini:"rpc_socket" default:"/var/tmp/spdk.sock" help:"SPDK (or SNAP) JSON-RPC unix socket."`
	RPCTimeout time.Duration `ini:"rpc_timeout" default:"30s" help:"Deadline of one SPDK JSON-RPC call."`
}

// StorageOpts is [storage].
type StorageOpts struct {
	HostNQN              string        `ini:"host_nqn" default:"" help:"This DPU's NVMe host NQN, used for every attach and as the Ironic nqn volume connector."`
	CtrlrLossTimeoutSec  int           `ini:"ctrlr_loss_timeout_sec" default:"-1" help:"bdev_nvme ctrlr_loss_timeout_sec: -1 retries forever (a cloud boot disk must not vanish)."`
	ReconnectDelaySec    int           `ini:"reconnect_delay_sec" default:"5" help:"bdev_nvme reconnect_delay_sec."`
	FastIOFailTimeoutSec int           `ini:"fast_io_fail_timeout_sec" default:"0" help:"bdev_nvme fast_io_fail_timeout_sec (0 = never fail I/O fast)."`
	Multipath            string        `ini:"multipath" default:"multipath" help:"bdev_nvme multipath mode for volumes with several portals: multipath or failover."`
	ConfigDriveDir       string        `ini:"config_drive_dir" default:"/var/lib/ironic-dpu-agent/config-drive" help:"Where config-drive ISO images live (one file per image, named by its sha256), exposed read-only to the host as a namespace of PF 0."`
	ConfigDriveMaxBytes  int           `ini:"config_drive_max_bytes" default:"67108864" help:"Largest config-drive ISO accepted, decoded (default 64 MiB); a larger one is refused with InvalidParameterValue."`
	ConfigDriveCAFile    string        `ini:"config_drive_ca_file" default:"" help:"PEM file of the CA certificates that an https config-drive URL's server certificate must chain to (the conductor's HTTP server or Swift); empty uses the system roots. There is no option to skip verification."`
	ConfigDriveTimeout   time.Duration `ini:"config_drive_fetch_timeout" default:"60s" help:"Deadline of one config-drive download (connect, headers and body). A failed or timed-out download marks the config drive in error and is retried by the storage reconcile with backoff; volumes and VIFs are not held up."`
	QuiesceMaxHold       time.Duration `ini:"quiesce_max_hold" default:"60s" help:"Longest time the host's NVMe controllers stay paused after quiesce (RPC API 1.3, Nova's snapshot of a running server): the agent resumes them by itself then, whether or not unquiesce comes, and on every stop and start. A quiesce may ask for less, never more."`
}

// NVMfOpts is [spdk_nvmf] (upstream SPDK emulation).
type NVMfOpts struct {
	Transport     string `ini:"transport" default:"VFIOUSER" help:"Host-facing NVMe-oF transport of the emulated controllers."`
	VFIOUserDir   string `ini:"vfio_user_dir" default:"/var/run/ironic-dpu-agent/vfio-user" help:"Where per-function VFIOUSER listener directories are made."`
	ListenAddress string `ini:"listen_address" default:"" help:"traddr for a non-VFIOUSER transport (e.g. TCP for tests)."`
	ListenPort    string `ini:"listen_port" default:"" help:"trsvcid for a non-VFIOUSER transport."`
	// The host-facing subsystems admit only these hosts when set.
	AllowedHostNQNs []string `ini:"allowed_host_nqns" default:"" help:"Host NQNs allowed to connect to the host-facing NVMe subsystems (comma-separated): allow_any_host false plus one nvmf_subsystem_add_host each. Empty allows any host, which is refused with a TCP listen_address that is not loopback."`
	DHCHAPKeyFile   string   `ini:"dhchap_key_file" default:"" help:"Absolute path (mode 0600) of a DH-HMAC-CHAP secret (DHHC-1:...) every allowed host must prove over TCP; SPDK loads it with keyring_file_add_key, the agent never reads it. Needs allowed_host_nqns."`
}

// Defaults returns a Config with every default applied.
func Defaults() *Config {
	c := &Config{}
	if err := walk(c, func(f field) error { return f.set(f.def) }); err != nil {
		panic(err) // defaults are compile-time constants; a bad one is a programmer error
	}
	return c
}

// Validate checks what the agent cannot run without.
func (c *Config) Validate() error {
	var errs []error
	if c.Default.NodeUUID == "" {
		errs = append(errs, errors.New("[DEFAULT] node_uuid is required"))
	}
	if c.Agent.Topic == "" || c.Agent.Exchange == "" {
		errs = append(errs, errors.New("[agent] topic and exchange must not be empty"))
	}
	if c.Default.StateDir == "" {
		errs = append(errs, errors.New("[DEFAULT] state_dir is required"))
	}
	if c.Storage.ConfigDriveMaxBytes < 1 {
		errs = append(errs, fmt.Errorf("[storage] config_drive_max_bytes %d must be positive", c.Storage.ConfigDriveMaxBytes))
	}
	if c.Agent.MaxVIFs < 1 || c.Agent.MaxVolumes < 1 || c.Agent.MaxMessageBytes < 1<<16 {
		errs = append(errs, errors.New("[agent] max_vifs and max_volumes must be >= 1 and max_message_bytes >= 65536"))
	}
	// nodestate.MaxPF / MaxVF are the generic bounds of a host function
	if c.DPU.PFs < 1 || c.DPU.PFs > nodestate.MaxPF+1 || c.DPU.MaxVFsPerPF < 0 || c.DPU.MaxVFsPerPF > nodestate.MaxVF+1 {
		errs = append(errs, fmt.Errorf("[dpu] pfs must be 1..%d and max_vfs_per_pf 0..%d", nodestate.MaxPF+1, nodestate.MaxVF+1))
	}
	switch c.Rabbit.KombuFailoverStrategy {
	case "round-robin", "shuffle":
	default:
		errs = append(errs, fmt.Errorf("[oslo_messaging_rabbit] kombu_failover_strategy %q must be round-robin or shuffle", c.Rabbit.KombuFailoverStrategy))
	}
	if c.Default.LivenessTimeout < time.Second {
		errs = append(errs, fmt.Errorf("[DEFAULT] liveness_timeout %s must be at least 1s", c.Default.LivenessTimeout))
	}
	if c.Storage.QuiesceMaxHold < time.Second || c.Storage.QuiesceMaxHold > time.Hour {
		// A paused host stalls every write: never indefinitely.
		errs = append(errs, fmt.Errorf("[storage] quiesce_max_hold %s must be 1s to 1h", c.Storage.QuiesceMaxHold))
	}
	if c.Rabbit.QosPrefetchCount < 0 {
		errs = append(errs, errors.New("[oslo_messaging_rabbit] rabbit_qos_prefetch_count must be >= 0"))
	}
	switch c.Storage.Multipath {
	case "multipath", "failover":
	default:
		errs = append(errs, fmt.Errorf("[storage] multipath %q must be multipath or failover", c.Storage.Multipath))
	}
	errs = append(errs, c.NVMf.validate(c.DPU.Driver)...)
	errs = append(errs, c.validateTLS()...)
	return errors.Join(errs...)
}

type field struct {
	group, name, def, help string
	secret                 bool
	// deprecated are older names oslo still reads for this option, newest
	// first (tag deprecated:"name,group/name"; a bare name is in group).
	deprecated []optKey
	v          reflect.Value
}

func (f field) set(s string) error {
	switch f.v.Interface().(type) {
	case string:
		f.v.SetString(s)
	case bool:
		// oslo.config's BoolOpt spellings (yes/on/y too), any case
		switch strings.ToLower(s) {
		case "1", "t", "true", "on", "y", "yes":
			f.v.SetBool(true)
		case "0", "f", "false", "off", "n", "no":
			f.v.SetBool(false)
		default:
			return fmt.Errorf("%q is not a boolean", s)
		}
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		f.v.SetInt(int64(n))
	case float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		f.v.SetFloat(n)
	case []string:
		list, err := parseList(s)
		if err != nil {
			return err
		}
		f.v.Set(reflect.ValueOf(list))
	case time.Duration:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(d))
	default:
		return fmt.Errorf("unsupported option type %s", f.v.Type())
	}
	return nil
}

// parseDuration accepts Go durations ("10s") and oslo-style plain seconds ("10").
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 10s or 10)", s)
	}
	return d, nil
}

func walk(c *Config, fn func(field) error) error {
	cv := reflect.ValueOf(c).Elem()
	ct := cv.Type()
	for i := 0; i < ct.NumField(); i++ {
		group := ct.Field(i).Tag.Get("group")
		sv := cv.Field(i)
		st := sv.Type()
		for j := 0; j < st.NumField(); j++ {
			sf := st.Field(j)
			f := field{group: group, name: sf.Tag.Get("ini"), def: sf.Tag.Get("default"),
				help: sf.Tag.Get("help"), secret: sf.Tag.Get("secret") == "true", v: sv.Field(j),
				deprecated: parseDeprecated(group, sf.Tag.Get("deprecated"))}
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// LogFields returns every option as group.name=value for a start-up log line,
// with secrets redacted: URLs through redactURL (which knows the transport
// URL syntax), other secrets replaced whole.
func (c *Config) LogFields(redactURL func(string) string) map[string]string {
	out := map[string]string{}
	_ = walk(c, func(f field) error {
		v := fmt.Sprint(f.v.Interface())
		if f.secret {
			if f.name == "transport_url" {
				v = redactURL(v)
			} else if v != "" {
				v = "***"
			}
		}
		out[f.group+"."+f.name] = v
		return nil
	})
	return out
}
