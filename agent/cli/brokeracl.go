package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/brokeracl"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

func brokerACLCmd(g *globals) *cobra.Command {
	var o brokeracl.Options
	c := &cobra.Command{
		Use:   "broker-acl",
		Short: "Print the rabbitmqctl commands that give one DPU its own, minimal broker user",
		Long: `Print, one per line, the rabbitmqctl commands that grant the broker user of one
DPU exactly what its agent needs on the DPU vhost: declare and consume its own
queues, reply through the default exchange, announce itself on the control
exchange under its own routing key; plus connection limits for the user and a
reject-publish size policy on every queue of the vhost. Lines starting with #
are comments (advice). The user must exist (rabbitmqctl add_user); the conductor
keeps a user of its own with full rights on the vhost. Pipe the output to a
shell where rabbitmqctl reaches the broker.

The DPU vhost must not be the vhost of Ironic's own RPC. Defaults for the
exchange, topic, size and vhost come from the agent's config when one is
given (--config-file), else from the built-in defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Defaults()
			if len(g.configFiles) > 0 || len(g.configDirs) > 0 {
				var err error
				if cfg, err = config.Load(g.configFiles, g.configDirs); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			if !f.Changed("exchange") {
				o.Exchange = cfg.Agent.Exchange
			}
			if !f.Changed("topic") {
				o.Topic = cfg.Agent.Topic
			}
			if !f.Changed("max-message-bytes") {
				o.MaxMessageBytes = cfg.Agent.MaxMessageBytes
			}
			if !f.Changed("node") && cfg.Default.NodeUUID != "" {
				o.Node = cfg.Default.NodeUUID
			}
			if !f.Changed("vhost") {
				o.VHost = "/"
				if u, err := rpcapi.ParseTransportURL(cfg.Default.TransportURL); err == nil && u.VHost != "" {
					o.VHost = u.VHost
				}
			}
			lines, err := brokeracl.Commands(o)
			if err != nil {
				return err
			}
			for _, l := range lines {
				if _, err := fmt.Fprintln(g.stdout, l); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.Node, "node", "", "node UUID of the DPU (default: [DEFAULT] node_uuid of --config-file)")
	fl.StringVar(&o.User, "user", "", "the DPU's RabbitMQ user (required)")
	fl.StringVar(&o.VHost, "vhost", "", "the DPUs' vhost (default: the vhost of [DEFAULT] transport_url, else /)")
	fl.StringVar(&o.Exchange, "exchange", "", "control exchange (default: [agent] exchange)")
	fl.StringVar(&o.Topic, "topic", "", "agent topic (default: [agent] topic)")
	fl.IntVar(&o.MaxMessageBytes, "max-message-bytes", 0, "largest message any queue of the vhost accepts (default: [agent] max_message_bytes)")
	fl.IntVar(&o.MaxConnections, "max-connections", 4, "connections the user may hold at once")
	fl.IntVar(&o.MaxChannels, "max-channels", 64, "channels the user may hold at once")
	_ = c.MarkFlagRequired("user")
	return c
}
