package cli

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/version"
)

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent version and RPC API version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.stdout, "ironic-dpu-agent %s (rpc api %s)\n", version.String(), version.RPCAPIVersion)
			return nil
		},
	}
}

func genconfigCmd(g *globals) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "genconfig",
		Short: "Write the sample configuration file (all options with defaults and help)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || out == "-" {
				_, err := fmt.Fprint(g.stdout, config.Sample())
				return err
			}
			return os.WriteFile(out, []byte(config.Sample()), 0o644)
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "-", "output file (- for stdout)")
	return c
}

func readAll(f *os.File) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}
