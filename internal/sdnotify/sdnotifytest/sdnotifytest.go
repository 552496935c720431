// Package sdnotifytest is a fake systemd notify socket for tests.
package sdnotifytest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ListenT listens on name (a path, or "@name" for the abstract namespace;
// "" makes a path in a short temp dir) and returns the name and every
// datagram received, until the test ends.
func ListenT(t testing.TB, name string) (string, <-chan string) {
	t.Helper()
	if name == "" {
		dir, err := os.MkdirTemp("", "notify") // unix paths are limited to 108 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify.sock")
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 10000)
	done := make(chan struct{})
	go func() { // ends when the socket is closed at cleanup
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			out <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return name, out
}

// Collect reads got for d: the WATCHDOG=1 pings are counted, every other
// notification is returned.
func Collect(got <-chan string, d time.Duration) (pings int, other []string) {
	end := time.After(d)
	for {
		select {
		case m := <-got:
			if m == "WATCHDOG=1" {
				pings++
			} else {
				other = append(other, m)
			}
		case <-end:
			return pings, other
		}
	}
}
