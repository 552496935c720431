package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/daemon"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// rpcFlags are the flags of every command that talks to a running agent.
type rpcFlags struct {
	node    string
	timeout time.Duration
}

func (f *rpcFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.node, "node", "", "node UUID of the agent to ask (default: [DEFAULT] node_uuid)")
	c.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "RPC timeout")
}

// callAgent calls method on the agent serving f.node and prints the JSON answer.
func (g *globals) callAgent(ctx context.Context, f *rpcFlags, method string, args map[string]any) (json.RawMessage, error) {
	res, err := g.rpc(ctx, f, method, args)
	if err != nil {
		return nil, err
	}
	return res, g.print(res)
}

func (g *globals) print(res json.RawMessage) error {
	var out bytes.Buffer
	if err := json.Indent(&out, res, "", "  "); err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, out.String())
	return nil
}

// rpc calls method on the agent serving f.node, like the conductor does:
// fail fast when no agent listens.
func (g *globals) rpc(ctx context.Context, f *rpcFlags, method string, args map[string]any) (json.RawMessage, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	node := f.node
	if node == "" {
		node = cfg.Default.NodeUUID
	}
	if node == "" {
		return nil, fmt.Errorf("no node: give --node or set [DEFAULT] node_uuid")
	}
	cl, err := rpcapi.NewClient(ctx, rpcapi.ClientConfig{
		URL: cfg.Default.TransportURL, Rabbit: daemon.RabbitOptions(cfg.Rabbit), Exchange: cfg.Agent.Exchange,
		Name: "ironic-dpu-agent-cli", Timeout: f.timeout, Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	res, err := cl.Call(ctx, rpcapi.Target{Exchange: cfg.Agent.Exchange, Topic: cfg.Agent.Topic, Server: node},
		method, args, rpcapi.CallOptions{Timeout: f.timeout, AtLeastOnce: true,
			Context: map[string]any{"request_id": "req-ironic-dpu-agent-cli"}})
	if err != nil {
		return nil, fmt.Errorf("agent for node %s: %s: %w", node, method, err)
	}
	return res, nil
}

func statusCmd(g *globals) *cobra.Command {
	var (
		f    rpcFlags
		full bool
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
			method := "get_status"
			if full {
				method = "get_state"
			}
			res, err := g.callAgent(cmd.Context(), &f, method, map[string]any{})
			if err != nil {
				return err
			}
			if !full {
				var st struct{ Healthy bool }
				if json.Unmarshal(res, &st) == nil && !st.Healthy {
					return &ExitError{Code: 3, Err: fmt.Errorf("agent reports unhealthy components")}
				}
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&full, "state", false, "print get_state (desired and observed state) instead")
	return c
}

// editCmds are the operator's direct edits of a running agent's desired
// state; the conductor normally does this through apply_state. By default
// they wait until the agent converged (--wait) and print the final state.
func editCmds(g *globals) []*cobra.Command {
	// component is what a command waits for: a NIC plug never waits for SPDK.
	component := map[string]string{"attach_volume": "storage", "detach_volume": "storage", "plug_vif": "network", "unplug_vif": "network"}
	edit := func(use, short, method, kwarg string, args cobra.PositionalArgs, value func(string) (any, error)) *cobra.Command {
		var (
			f rpcFlags
			w waitFlags
		)
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				v, err := value(args[0])
				if err != nil {
					return err
				}
				res, err := g.rpc(cmd.Context(), &f, method, map[string]any{kwarg: v})
				if err != nil || !w.wait {
					if err == nil {
						err = g.print(res)
					}
					return err
				}
				// apply_state names the admitted generation; for one item
				// the first get_state's desired generation is the edit's.
				var ans struct {
					Generation int64 `json:"generation"`
				}
				_ = json.Unmarshal(res, &ans)
				final, werr := g.waitConverged(cmd.Context(), &f, &w, ans.Generation, component[method])
				if final != nil {
					if perr := g.print(final); werr == nil {
						werr = perr
					}
				}
				return werr
			},
		}
		f.add(c)
		w.add(c.Flags())
		return c
	}
	fileArg := func(use, short, method, kwarg string) *cobra.Command {
		return edit(use+" FILE", short, method, kwarg, cobra.ExactArgs(1), func(name string) (any, error) {
			var v any
			b, err := readFileOrStdin(name)
			if err == nil {
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.UseNumber()
				err = dec.Decode(&v)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return v, nil
		})
	}
	idArg := func(use, short, method, kwarg string) *cobra.Command {
		return edit(use+" ID", short, method, kwarg, cobra.ExactArgs(1), func(id string) (any, error) { return id, nil })
	}
	return []*cobra.Command{
		fileArg("apply", "Replace the desired state with the JSON state in FILE (- for stdin)", "apply_state", "state"),
		fileArg("attach", "Attach the volume described by the JSON in FILE", "attach_volume", "volume"),
		idArg("detach", "Detach volume ID", "detach_volume", "volume_id"),
		fileArg("plug", "Plug the VIF described by the JSON in FILE", "plug_vif", "vif"),
		idArg("unplug", "Unplug the VIF of Neutron port ID", "unplug_vif", "port_id"),
	}
}

func readFileOrStdin(name string) ([]byte, error) {
	if name == "-" {
		return readAll(os.Stdin)
	}
	return os.ReadFile(name)
}
