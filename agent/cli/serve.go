package cli

import (
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/daemon"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

func serveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the agent: serve RPC and keep the DPU at the desired state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, notices, err := g.loadWithNotices()
			if err != nil {
				return err
			}
			log, err := g.logger(cfg.Default.Debug)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			logNotices(log, notices)
			return daemon.Run(cmd.Context(), cfg, log)
		},
	}
}

// logNotices warns about every unknown or deprecated name in the config
// files: the agent runs, but does not do what such a line asks.
func logNotices(log *zap.Logger, notices []config.Notice) {
	for _, n := range notices {
		msg := "config: option name is deprecated"
		if n.Kind == config.NoticeUnknown {
			msg = "config: unknown section or option, ignored"
		}
		log.Warn(msg, zap.String("file", n.File), zap.String("section", n.Section), zap.String("option", n.Key), zap.String("detail", n.Msg))
	}
}
