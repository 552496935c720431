package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

func statusCmd(g *globals) *cobra.Command {
	var (
		node    string
		timeout time.Duration
		full    bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Ask a running agent (over RPC) for its status",
		Long: `Call get_status (or, with --state, get_state) on the agent serving --node
(default: [DEFAULT] node_uuid of the config) and print the JSON answer.
Exit code 0 when the agent answered and is healthy, 3 when it answered unhealthy,
1 when it could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if node == "" {
				node = cfg.Default.NodeUUID
			}
			if node == "" {
				return fmt.Errorf("no node: give --node or set [DEFAULT] node_uuid")
			}
			ctx := cmd.Context()
			cl, err := rpcapi.NewClient(ctx, rpcapi.ClientConfig{
				URL: cfg.Default.TransportURL, Rabbit: cfg.Rabbit, Exchange: cfg.Agent.Exchange,
				Name: "ironic-dpu-agent-status", Timeout: timeout, Logger: zap.NewNop(),
			})
			if err != nil {
				return err
			}
			defer cl.Close()
			method := "get_status"
			if full {
				method = "get_state"
			}
			res, err := cl.Call(ctx, rpcapi.Target{Exchange: cfg.Agent.Exchange, Topic: cfg.Agent.Topic, Server: node},
				method, map[string]any{}, rpcapi.CallOptions{Timeout: timeout, AtLeastOnce: true,
					Context: map[string]any{"request_id": "req-status-cli"}})
			if err != nil {
				return fmt.Errorf("agent for node %s: %w", node, err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, res, "", "  "); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, out.String())
			if !full {
				var st struct{ Healthy bool }
				if json.Unmarshal(res, &st) == nil && !st.Healthy {
					return &ExitError{Code: 3, Err: fmt.Errorf("agent for node %s reports unhealthy components", node)}
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&node, "node", "", "node UUID of the agent to ask (default: [DEFAULT] node_uuid)")
	c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "RPC timeout")
	c.Flags().BoolVar(&full, "state", false, "print get_state (desired and observed state) instead")
	return c
}
