// Command spdk-emulator serves storage/spdk/spdktest (strict SPDK/SNAP JSON-RPC
// emulator) on a unix socket for the demo and kill/restart tests; SIGTERM stops it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

func main() {
	sock := flag.String("socket", "/var/tmp/spdk.sock", "unix socket to serve")
	remotes := flag.String("remotes", "", "JSON file listing the reachable remote NVMe-oF subsystems")
	debug := flag.Bool("debug-methods", false, "serve spdktest_get_call_counts, spdktest_reset_call_counts, spdktest_remove_remote/add_remote and spdktest_snap_host")
	pathTick := flag.Duration("path-tick", 0, "how often lost NVMe-oF paths advance (0: the emulator's default, 25ms)")
	snapPFs := flag.Int("snap-pfs", 0, "SNAP: static NVMe emulation PFs (0: the emulator's default, 2)")
	snapVFs := flag.Int("snap-sriov-vfs", 0, "SNAP: VFs the host has enabled on every NVMe PF (sriov_numvfs) at start")
	snapBare := flag.Bool("snap-no-init-config", false, "SNAP: start without NVIDIA's published init configuration (NVMeCtrl1 on PF 0)")
	flag.Parse()
	opts := spdktest.Options{Debug: *debug, PathTick: *pathTick, SNAPPFs: *snapPFs, SNAPNoInitConfig: *snapBare}
	if *snapVFs > 0 {
		opts.SNAPVFs = *snapVFs
	}
	var err error
	if *remotes != "" {
		opts.Remotes, err = spdktest.LoadRemotes(*remotes)
	}
	e := spdktest.New(opts)
	for pf := 0; err == nil && *snapVFs > 0 && pf < e.SNAPPFs(); pf++ {
		err = e.EnableSRIOV(pf, *snapVFs)
	}
	if err == nil {
		err = e.Start(*sock)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("spdk-emulator listening on %s\n", *sock)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	_ = e.Stop()
}
