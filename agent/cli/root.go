// Package cli holds the ironic-dpu-agent commands (cobra). It parses flags,
// loads config and hands off; the daemon's logic lives elsewhere.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

// ExitError carries a specific process exit code (used by `check`).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

type globals struct {
	configFiles []string
	configDirs  []string
	logFormat   string
	stdout      io.Writer
	stderr      io.Writer
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "ironic-dpu-agent",
		Short:         "Ironic DPU agent: cloud disks and VPC ports for a bare-metal host, served from its DPU",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringArrayVar(&g.configFiles, "config-file", nil, "config file (repeatable; later files win)")
	pf.StringArrayVar(&g.configDirs, "config-dir", nil, "directory of *.conf files read after --config-file (repeatable)")
	pf.StringVar(&g.logFormat, "log-format", "json", "log format: json or console")
	root.AddCommand(serveCmd(g), statusCmd(g), versionCmd(g), genconfigCmd(g), checkCmd(g), brokerACLCmd(g))
	root.AddCommand(editCmds(g)...)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "ironic-dpu-agent: %v\n", err)
		if ee, ok := err.(*ExitError); ok {
			return ee.Code
		}
		return 1
	}
	return 0
}

// load reads the config files; with none given it tries the packaged path.
func (g *globals) load() (*config.Config, error) {
	c, _, err := g.loadWithNotices()
	return c, err
}

// loadWithNotices is load that also returns the unknown and deprecated
// names found, for serve to log and check to print.
func (g *globals) loadWithNotices() (*config.Config, []config.Notice, error) {
	files := g.configFiles
	if len(files) == 0 && len(g.configDirs) == 0 {
		const def = "/etc/ironic-dpu-agent/ironic-dpu-agent.conf"
		if _, err := os.Stat(def); err != nil {
			return nil, nil, fmt.Errorf("no --config-file given and %s not found", def)
		}
		files = []string{def}
	}
	return config.LoadWithNotices(files, g.configDirs)
}

func (g *globals) logger(debug bool) (*zap.Logger, error) {
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	if debug {
		level.SetLevel(zapcore.DebugLevel)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch g.logFormat {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("--log-format %q: want json or console", g.logFormat)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(g.stderr), level)), nil
}
