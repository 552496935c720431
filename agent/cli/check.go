package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/hwcheck"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/oneshot"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/tlsconf"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// Exit codes of `check`: a config problem stops at once; otherwise the code is
// the sum of the unreachable components' bits.
const (
	CheckConfigInvalid = 1
	CheckRabbitDown    = 2
	CheckSPDKDown      = 4
	CheckOVSDBDown     = 8
	// CheckHardware is added when `check --hardware` found a problem: the
	// card lacks what the agent needs, or the state could not be served.
	CheckHardware = 16
	// CheckConfigUnknown is added when the config files hold a section or
	// option the agent does not read (a typo, or another service's option):
	// the agent would start, ignoring it. The other checks still run.
	CheckConfigUnknown = 32
)

func checkCmd(g *globals) *cobra.Command {
	var (
		timeout   time.Duration
		hardware  bool
		stateFile string
	)
	c := &cobra.Command{
		Use:   "check",
		Short: "Validate the config and reach RabbitMQ, SPDK and OVSDB",
		Long: `Validate the configuration, then try RabbitMQ (AMQP login), SPDK (spdk_get_version)
and OVSDB (list_dbs). Exit code: 0 all good; 1 config invalid; otherwise the sum of
2 (RabbitMQ unreachable), 4 (SPDK unreachable), 8 (OVSDB unreachable),
16 (--hardware found a problem) and 32 (the config files hold an unknown section
or option: printed as "config: WARNING: FILE: unknown ...", ignored by the agent).

A deprecated option name that is still honoured (oslo's rabbit_use_ssl,
kombu_ssl_ca_certs...) is printed as a warning and does not change the code.
Neither does a plaintext transport to a non-loopback address: an AMQP broker
without [oslo_messaging_rabbit] ssl, or a tcp: ovsdb_connection, is printed as
"WARNING: plaintext ..." (the network may be private by design; the line says
what crosses it in clear).

--hardware is the first step on new hardware: it lists, changing nothing, what
the DPU has (SNAP version and NVMe emulation functions, representors per host
function, OVS bridges and uplinks, SF support) and, with --state FILE (a desired
state as apply takes it), what the agent would create or adopt for it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, notices, err := g.loadWithNotices()
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				return &ExitError{Code: CheckConfigInvalid, Err: fmt.Errorf("config invalid: %w", err)}
			}
			code := 0
			var msgs []string
			for _, n := range notices {
				fmt.Fprintf(g.stdout, "config: WARNING: %s\n", n)
				if n.Kind == config.NoticeUnknown && code&CheckConfigUnknown == 0 {
					code |= CheckConfigUnknown
					msgs = append(msgs, "unknown config sections or options")
				}
			}
			fmt.Fprintf(g.stdout, "config: ok (node %s, driver %s)\n", cfg.Default.NodeUUID, cfg.DPU.Driver)
			for _, w := range plaintextWarnings(cfg) {
				fmt.Fprintf(g.stdout, "WARNING: %s\n", w)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			report := func(name string, bit int, err error) {
				if err != nil {
					code |= bit
					fmt.Fprintf(g.stdout, "%s: UNREACHABLE: %v\n", name, err)
					return
				}
				fmt.Fprintf(g.stdout, "%s: ok\n", name)
			}
			report("rabbitmq "+rpcapi.RedactURL(cfg.Default.TransportURL), CheckRabbitDown, rpcapi.Probe(ctx, cfg.Default.TransportURL, cfg.Rabbit))
			report("spdk "+cfg.SPDK.RPCSocket, CheckSPDKDown, probeSPDK(ctx, cfg.SPDK.RPCSocket))
			report("ovsdb "+cfg.OVS.OVSDBConnection, CheckOVSDBDown, probeOVSDB(ctx, cfg.OVS))
			if code&(CheckRabbitDown|CheckSPDKDown|CheckOVSDBDown) != 0 {
				msgs = append(msgs, "some components are unreachable")
			}
			if hardware {
				problems, err := g.checkHardware(ctx, cfg, stateFile)
				if err != nil {
					return &ExitError{Code: code | CheckHardware, Err: err}
				}
				if problems > 0 {
					code |= CheckHardware
					msgs = append(msgs, fmt.Sprintf("%d hardware problem(s)", problems))
				}
			}
			if code != 0 {
				return &ExitError{Code: code, Err: errors.New(strings.Join(msgs, "; "))}
			}
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "overall time limit for the reachability checks")
	c.Flags().BoolVar(&hardware, "hardware", false, "also list what the DPU has and, with --state, what the agent would do (read-only)")
	c.Flags().StringVar(&stateFile, "state", "", "with --hardware: a desired state JSON file (- for stdin) to plan against the hardware")
	return c
}

// checkHardware prints the hardware report and returns its problem count.
func (g *globals) checkHardware(ctx context.Context, cfg *config.Config, stateFile string) (int, error) {
	var desired *nodestate.Desired
	if stateFile != "" {
		b, err := readFileOrStdin(stateFile)
		if err != nil {
			return 0, err
		}
		desired = &nodestate.Desired{}
		if err := json.Unmarshal(b, desired); err != nil {
			return 0, fmt.Errorf("%s: %w", stateFile, err)
		}
		desired.Normalize()
		if err := desired.Validate(); err != nil {
			return 0, fmt.Errorf("%s: %w", stateFile, err)
		}
	}
	log := zap.NewNop()
	card := drivers.Card{PFs: cfg.DPU.PFs, VFsPerPF: cfg.DPU.MaxVFsPerPF}
	tc, err := tlsconf.OVSDB(cfg.OVS.OVSDBConnection, cfg.OVS.SSLKeyFile, cfg.OVS.SSLCertFile, cfg.OVS.SSLCACertFile)
	if err != nil {
		return 0, err
	}
	o := hwcheck.Options{OVSDB: cfg.OVS.OVSDBConnection, OVSDBTLS: tc, Bridge: cfg.OVS.IntegrationBridge, Desired: desired}
	switch cfg.DPU.Driver {
	case "bluefield":
		client := spdk.NewUnix(cfg.SPDK.RPCSocket, log)
		defer client.Close()
		st, err := bluefield.NewStorage(bluefield.StorageOptions{Client: client, NodeUUID: cfg.Default.NodeUUID, Logger: log})
		if err != nil {
			return 0, err
		}
		o.Storage = st
		o.Network = bluefield.NewNetwork(cfg.OVS.SysfsRoot, card, log)
	case "spdk-generic", "spdk-nvmf":
		o.Network = bluefield.NewLocalNetwork(cfg.OVS.SysfsRoot, card, log)
	default:
		return 0, fmt.Errorf("--hardware looks at a real card: [dpu] driver %q has none (use bluefield or spdk-generic)", cfg.DPU.Driver)
	}
	fmt.Fprintf(g.stdout, "hardware (driver %s, sysfs %s, read-only):\n", cfg.DPU.Driver, cfg.OVS.SysfsRoot)
	r := hwcheck.Collect(ctx, o)
	r.Print(g.stdout)
	return len(r.Problems), nil
}

func probeSPDK(ctx context.Context, sock string) error {
	res, err := oneshot.Call(ctx, "unix", sock, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "spdk_get_version"})
	if err != nil {
		return err
	}
	var v struct{ Version string }
	if json.Unmarshal(res, &v) != nil || v.Version == "" {
		return fmt.Errorf("unexpected spdk_get_version result %s", res)
	}
	return nil
}

// probeOVSDB accepts OVS-style endpoints: unix:PATH, tcp:HOST:PORT and
// ssl:HOST:PORT (with the [ovs] ssl_* files).
func probeOVSDB(ctx context.Context, o config.OVSOpts) error {
	network, addr, _, err := oneshot.OVSDBAddr(o.OVSDBConnection)
	if err != nil {
		return err
	}
	tc, err := tlsconf.OVSDB(o.OVSDBConnection, o.SSLKeyFile, o.SSLCertFile, o.SSLCACertFile)
	if err != nil {
		return err
	}
	res, err := oneshot.CallTLS(ctx, network, addr, tc, map[string]any{"id": 1, "method": "list_dbs", "params": []any{}})
	if err != nil {
		return err
	}
	var dbs []string
	if json.Unmarshal(res, &dbs) != nil {
		return fmt.Errorf("unexpected list_dbs result %s", res)
	}
	for _, d := range dbs {
		if d == "Open_vSwitch" {
			return nil
		}
	}
	return fmt.Errorf("server has no Open_vSwitch database (has %v)", dbs)
}

// plaintextWarnings names each transport that would carry credentials or
// requests in clear to another machine: a broker host reached without TLS
// (after the transport_url's own ?ssl=), a tcp: OVSDB. Host names other than
// localhost count as remote: they are not resolved here.
func plaintextWarnings(cfg *config.Config) []string {
	var out []string
	if u, err := rpcapi.ParseTransportURL(cfg.Default.TransportURL); err == nil {
		o, _, err := u.ApplyQuery(cfg.Rabbit)
		if err == nil && !o.SSL {
			for _, h := range u.Hosts {
				if !loopback(h.Host) {
					out = append(out, fmt.Sprintf("plaintext AMQP to %s: the broker password and every request cross the network in clear; set [oslo_messaging_rabbit] ssl = true and ssl_ca_file",
						net.JoinHostPort(h.Host, strconv.Itoa(h.Port))))
				}
			}
		}
	}
	if ep, ok := strings.CutPrefix(cfg.OVS.OVSDBConnection, "tcp:"); ok {
		host, _, err := net.SplitHostPort(ep)
		if err != nil || !loopback(host) {
			out = append(out, fmt.Sprintf("plaintext OVSDB %s: anyone on that network can rewrite the DPU's switch; use ssl: with [ovs] ssl_key_file, ssl_cert_file and ssl_ca_cert_file, or unix:", cfg.OVS.OVSDBConnection))
		}
	}
	return out
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
