package spdk_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// bdevWaitForever is a bdev_get_bdevs timeout (ms) no test outlives: the
// emulator answers such a call only when it stops.
const bdevWaitForever = 3600 * 1000

const hostNQN = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"

func TestCallTypedResultAndError(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	ctx := context.Background()
	v, err := c.GetVersion(ctx)
	if err != nil || v.Version != "SPDK v24.09" || v.Fields.Minor != 9 {
		t.Fatalf("version = %+v, %v", v, err)
	}
	err = c.Call(ctx, "bdev_nvme_detach_controller", map[string]string{"name": "nope"}, nil)
	var se *spdk.Error
	if !errors.As(err, &se) || se.Code != -19 || se.Message != "No such device" {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, errdefs.ErrStorage) || errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err kind = %v", errdefs.Kind(err))
	}
	// The positive +22 of v24.09 becomes ErrNotFound in the helper.
	if _, err := c.GetControllers(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) || !spdk.HasCode(err, 22) {
		t.Fatalf("GetControllers(nope) = %v", err)
	}
	if err := c.Call(ctx, "spdk_get_version", 42, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("scalar params accepted: %v", err)
	}
	if e.Notifications() != 0 {
		t.Fatalf("client sent %d notifications", e.Notifications())
	}
}

func TestUnavailableAndRedial(t *testing.T) {
	dir := t.TempDir()
	c := spdk.NewUnix(filepath.Join(dir, "missing.sock"), nil)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.GetVersion(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("no socket: %v", err)
	}

	e := spdktest.StartT(t, spdktest.Options{})
	c2 := spdk.NewUnix(e.Socket(), nil)
	defer c2.Close()
	if _, err := c2.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	sock := e.Socket()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.GetVersion(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("stopped SPDK: %v", err)
	}
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	// The client re-dials by itself; the restarted SPDK is empty.
	if _, err := c2.GetVersion(ctx); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if cs, err := c2.GetControllers(ctx, ""); err != nil || len(cs) != 0 {
		t.Fatalf("restarted emulator not empty: %v %v", cs, err)
	}
}

func TestDeadlineKeepsConnectionUsable(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	// bdev_get_bdevs waits for a missing bdev longer than the test runs:
	// only the context can end the call.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var err error
	poll.Returns(t, "a call past its ctx deadline", func() {
		err = c.Call(ctx, "bdev_get_bdevs", map[string]any{"name": "nope", "timeout": bdevWaitForever}, nil)
	})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	// The abandoned call's reply, when it comes, is dropped by id; the next
	// call works at once.
	if _, err := c.GetVersion(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The client-wide bound ([spdk] rpc_timeout) applies without a ctx deadline.
	c.SetCallTimeout(30 * time.Millisecond)
	poll.Returns(t, "a call past the client's call timeout", func() {
		err = c.Call(context.Background(), "bdev_get_bdevs", map[string]any{"name": "nope", "timeout": bdevWaitForever}, nil)
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call timeout: %v", err)
	}
}

// TestConcurrentOutOfOrder runs slow (asynchronous) and fast calls on one
// client at once: replies arrive out of order and must reach their callers.
func TestConcurrentOutOfOrder(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{AttachLatency: 30 * time.Millisecond})
	for i := 0; i < 8; i++ {
		e.AddRemote(spdktest.CinderVolume(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), hostNQN, "4420"))
	}
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("vol%d", i)
			names, err := c.AttachController(ctx, spdk.AttachControllerParams{
				Name: name, Trtype: "tcp", Adrfam: "ipv4", Traddr: "127.0.0.1", Trsvcid: "4420",
				Subnqn: fmt.Sprintf("nqn.2010-10.org.openstack:volume-00000000-0000-4000-8000-%012d", i), Hostnqn: hostNQN, Multipath: "multipath",
			})
			if err != nil || len(names) != 1 || names[0] != name+"n1" {
				errs <- fmt.Errorf("attach %s: %v %v", name, names, err)
			}
		}(i)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				if _, err := c.GetVersion(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cs, err := c.GetControllers(ctx, ""); err != nil || len(cs) != 8 {
		t.Fatalf("controllers = %d, %v", len(cs), err)
	}
	if e.Calls("spdk_get_version") != 40 || e.Notifications() != 0 {
		t.Fatalf("calls = %v", e.CallCounts())
	}
}

// A restart quicker than any probe is still an event: the client's Run
// notices the closed connection, re-dials by itself and reports once SPDK
// accepts again; cancelling Run's context stops it even while SPDK is away.
func TestOnReconnectAfterQuickRestart(t *testing.T) {
	e, sock, c, events := reconnectingClient(t)
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { c.Run(runCtx); close(ran) }()
	ctx := context.Background()
	if _, err := c.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-events:
		t.Fatal("the first connect is not a reconnect")
	case <-time.After(100 * time.Millisecond):
	}
	restart(t, e, sock)
	// No call is made: the client must find out on its own.
	poll.Returns(t, "waiting for a reconnect event after SPDK restarted", func() { <-events })
	select {
	case <-events:
		t.Fatal("one restart reported twice")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := c.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	// Cancelling Run stops the re-dialling even while SPDK is away.
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	stop()
	poll.Returns(t, "Run after its context ended", func() { <-ran })
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-events:
		t.Fatal("event after Run returned")
	default:
	}
}

// Nothing re-dials in the background unless the owner runs the client: a
// restart without Run is no event (the next call re-dials by itself).
func TestNoReconnectWatchWithoutRun(t *testing.T) {
	e, sock, c, events := reconnectingClient(t)
	ctx := context.Background()
	if _, err := c.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	restart(t, e, sock)
	select {
	case <-events:
		t.Fatal("a reconnect event fired without Run")
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := c.GetVersion(ctx); err != nil {
		t.Fatalf("a call after the restart: %v", err)
	}
}

// reconnectingClient is an emulator and a client that reports reconnects
// on events.
func reconnectingClient(t *testing.T) (*spdktest.Emulator, string, *spdk.Client, chan struct{}) {
	e := spdktest.StartT(t, spdktest.Options{})
	events := make(chan struct{}, 4)
	c := spdk.NewUnix(e.Socket(), nil, spdk.WithOnReconnect(func() { events <- struct{}{} }),
		spdk.WithRedialInterval(20*time.Millisecond))
	t.Cleanup(func() { _ = c.Close() })
	return e, e.Socket(), c, events
}

func restart(t *testing.T, e *spdktest.Emulator, sock string) {
	t.Helper()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
}

// SPDK stopping gracefully answers a pending request with -108
// (c-faults.jsonl line 18): the caller sees an unavailable SPDK (retried once
// it is back), not a storage error of the request itself.
func TestPendingCallAtGracefulStopIsUnavailable(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		done <- c.Call(context.Background(), "bdev_get_bdevs", map[string]any{"name": "NoSuchBdev", "timeout": bdevWaitForever}, nil)
	}()
	poll.Returns(t, "waiting for the request to reach the emulator", func() {
		for e.Calls("bdev_get_bdevs") == 0 {
			time.Sleep(time.Millisecond)
		}
	})
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	var err error
	poll.Returns(t, "the pending call when SPDK stopped", func() { err = <-done })
	if !spdk.HasCode(err, spdk.CodeESHUTDOWN) || !errors.Is(err, errdefs.ErrUnavailable) || !errors.Is(err, errdefs.ErrStorage) {
		t.Fatalf("err = %v (kind %v), want -108 and unavailable", err, errdefs.Kind(err))
	}
}
