package cli

import (
	"github.com/spf13/cobra"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/daemon"
)

func serveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the agent: serve RPC and keep the DPU at the desired state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log, err := g.logger(cfg.Default.Debug)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return daemon.Run(cmd.Context(), cfg, log)
		},
	}
}
