package spdktest

import (
	"net"
	"os"
	"path/filepath"
)

// cntrlPath is the socket libvfio-user creates in a VFIOUSER listener
// directory; a vfio-user client (QEMU, a PCIe emulation layer) connects to it.
func cntrlPath(traddr string) string { return filepath.Join(traddr, "cntrl") }

// listenVFIOUser makes <traddr>/cntrl a real listening socket, as SPDK's
// vfio-user transport does. Any file already there (the socket of a killed
// SPDK) makes bind fail with EADDRINUSE, which SPDK v24.09 answers with
// -32602 (c-faults.jsonl line 39: "error creating libmuser context: Address
// already in use"). Caller holds e.mu.
func (e *Emulator) listenVFIOUser(traddr string) error {
	if fi, err := os.Stat(traddr); err != nil || !fi.IsDir() {
		return errInvalidParams // SPDK opens <traddr>/bar0: the directory must exist
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cntrlPath(traddr), Net: "unix"})
	if err != nil {
		return errInvalidParams
	}
	e.vfio[traddr] = ln
	return nil
}

// closeVFIOUser stops listening on traddr; a graceful close removes cntrl,
// a crash (unlink false) leaves it behind. Caller holds e.mu.
func (e *Emulator) closeVFIOUser(traddr string, unlink bool) {
	ln, ok := e.vfio[traddr]
	if !ok {
		return
	}
	ln.SetUnlinkOnClose(unlink)
	_ = ln.Close()
	delete(e.vfio, traddr)
}

// closeAllVFIOUser closes every vfio-user socket. Caller holds e.mu.
func (e *Emulator) closeAllVFIOUser(unlink bool) {
	for traddr := range e.vfio {
		e.closeVFIOUser(traddr, unlink)
	}
}
