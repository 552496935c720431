package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/oneshot"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// Exit codes of `check`: a config problem stops at once; otherwise the code is
// the sum of the unreachable components' bits.
const (
	CheckConfigInvalid = 1
	CheckRabbitDown    = 2
	CheckSPDKDown      = 4
	CheckOVSDBDown     = 8
)

func checkCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "check",
		Short: "Validate the config and reach RabbitMQ, SPDK and OVSDB",
		Long: `Validate the configuration, then try RabbitMQ (AMQP login), SPDK (spdk_get_version)
and OVSDB (list_dbs). Exit code: 0 all good; 1 config invalid; otherwise the sum of
2 (RabbitMQ unreachable), 4 (SPDK unreachable) and 8 (OVSDB unreachable).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				return &ExitError{Code: CheckConfigInvalid, Err: fmt.Errorf("config invalid: %w", err)}
			}
			fmt.Fprintf(g.stdout, "config: ok (node %s, driver %s)\n", cfg.Default.NodeUUID, cfg.DPU.Driver)
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			code := 0
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
			report("ovsdb "+cfg.OVS.OVSDBConnection, CheckOVSDBDown, probeOVSDB(ctx, cfg.OVS.OVSDBConnection))
			if code != 0 {
				return &ExitError{Code: code, Err: errors.New("some components are unreachable")}
			}
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "overall time limit for the reachability checks")
	return c
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

// probeOVSDB accepts OVS-style endpoints: unix:PATH, tcp:HOST:PORT.
func probeOVSDB(ctx context.Context, endpoint string) error {
	network, addr, err := oneshot.OVSDBAddr(endpoint)
	if err != nil {
		return err
	}
	res, err := oneshot.Call(ctx, network, addr, map[string]any{"id": 1, "method": "list_dbs", "params": []any{}})
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
