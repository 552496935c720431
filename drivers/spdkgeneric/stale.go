package spdkgeneric

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cntrlName is the socket libvfio-user creates in a listener directory.
const cntrlName = "cntrl"

// removeStaleSocket removes <root>/<name>/cntrl when it is a socket nobody
// listens on: an SPDK killed with SIGKILL leaves it, and the next SPDK cannot
// bind there (nvmf_subsystem_add_listener -32602 for ever). It touches nothing
// else: name must be one path element, neither it nor cntrl may be a symlink
// (everything is opened relative to a directory fd with O_NOFOLLOW), cntrl
// must be a socket, and connecting to it must be refused (a live one belongs
// to a running server). It reports whether it removed the file.
func removeStaleSocket(root, name string) (bool, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return false, fmt.Errorf("vfio-user listener %q is not a directory name", name)
	}
	rootFD, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open vfio_user_dir %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	dirFD, err := unix.Openat(rootFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open %s/%s (not following symlinks): %w", root, name, err)
	}
	defer unix.Close(dirFD)
	var st unix.Stat_t
	if err := unix.Fstatat(dirFD, cntrlName, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat %s/%s/%s: %w", root, name, cntrlName, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return false, nil // not a socket: not ours to remove
	}
	// Connect through the directory fd, so the path resolves inside it.
	via := "/proc/self/fd/" + strconv.Itoa(dirFD) + "/" + cntrlName
	c, err := net.DialTimeout("unix", via, time.Second)
	if err == nil {
		_ = c.Close()
		return false, nil // someone serves it
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return false, fmt.Errorf("probe %s/%s/%s: %w", root, name, cntrlName, err)
	}
	if err := unix.Unlinkat(dirFD, cntrlName, 0); err != nil {
		return false, fmt.Errorf("remove stale %s/%s/%s: %w", root, name, cntrlName, err)
	}
	return true, nil
}
