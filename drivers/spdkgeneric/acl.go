package spdkgeneric

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// listening reports whether sub has this driver's listener for its function.
func (s *Storage) listening(sub spdk.Subsystem) bool {
	f, ok := drivers.ParseHostSubsystemNQN(s.o.NodeUUID, sub.NQN)
	if !ok {
		return false
	}
	want := s.listener(f)
	for _, l := range sub.ListenAddresses {
		if strings.EqualFold(l.Trtype, want.Trtype) && l.Traddr == want.Traddr && l.Trsvcid == want.Trsvcid {
			return true
		}
	}
	return false
}

// dhchapKeyName is the agent's key in SPDK's keyring.
const dhchapKeyName = "ironic-dpu-host-dhchap"

func (s *Storage) keyName() string {
	if s.o.DHCHAPKeyFile == "" {
		return ""
	}
	return dhchapKeyName
}

// aclDone reports whether sub admits exactly the configured hosts (any host
// when none is configured), each with the configured key.
func (s *Storage) aclDone(sub spdk.Subsystem) bool {
	if sub.AllowAnyHost != (len(s.o.AllowedHosts) == 0) || len(sub.Hosts) != len(s.o.AllowedHosts) {
		return false
	}
	for _, h := range sub.Hosts {
		if !slices.Contains(s.o.AllowedHosts, h.NQN) || h.DhchapKey != s.keyName() {
			return false
		}
	}
	return true
}

// ensureACL brings sub's host list and allow_any_host to the configuration,
// from what nvmf_get_subsystems showed: SPDK answers a duplicate add_host or
// an absent remove_host with the same -32603 as a real failure, so only
// missing hosts are added and only listed ones removed. Hosts are added
// before allow_any_host is turned off, and it is turned on before hosts are
// removed, so the configured host never loses access on the way.
func (s *Storage) ensureACL(ctx context.Context, sub spdk.Subsystem) error {
	if s.aclDone(sub) {
		return nil
	}
	if err := s.ensureKey(ctx); err != nil {
		return err
	}
	if err := s.addHosts(ctx, sub); err != nil {
		return err
	}
	anyHost := len(s.o.AllowedHosts) == 0
	if sub.AllowAnyHost != anyHost {
		if err := s.o.Client.AllowAnyHost(ctx, sub.NQN, anyHost); err != nil {
			return err
		}
	}
	for _, h := range sub.Hosts {
		if !slices.Contains(s.o.AllowedHosts, h.NQN) {
			if err := s.o.Client.RemoveHost(ctx, sub.NQN, h.NQN); err != nil {
				return err
			}
		}
	}
	logctx.Logger(ctx, s.log).Info("host NVMe subsystem access set", zap.String("nqn", sub.NQN),
		zap.Bool("allow_any_host", anyHost), zap.Strings("hosts", s.o.AllowedHosts))
	return nil
}

// addHosts adds the allowed hosts sub lacks. A host listed with another key
// is removed and added again: SPDK cannot change the key of a host entry.
func (s *Storage) addHosts(ctx context.Context, sub spdk.Subsystem) error {
	for _, h := range s.o.AllowedHosts {
		i := slices.IndexFunc(sub.Hosts, func(x spdk.SubsystemHost) bool { return x.NQN == h })
		if i >= 0 && sub.Hosts[i].DhchapKey == s.keyName() {
			continue
		}
		if i >= 0 {
			if err := s.o.Client.RemoveHost(ctx, sub.NQN, h); err != nil {
				return err
			}
		}
		if err := s.o.Client.AddHost(ctx, sub.NQN, h, s.keyName()); err != nil {
			return err
		}
	}
	return nil
}

// ensureKey loads DHCHAPKeyFile into SPDK's keyring under the agent's name
// (again after an SPDK restart, or when the path changed).
func (s *Storage) ensureKey(ctx context.Context) error {
	if s.o.DHCHAPKeyFile == "" {
		return nil
	}
	keys, err := s.o.Client.GetKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Name != dhchapKeyName || k.Removed {
			continue
		}
		if k.Path == s.o.DHCHAPKeyFile {
			return nil
		}
		if err := s.o.Client.RemoveKey(ctx, dhchapKeyName); err != nil {
			return err
		}
	}
	if err := s.o.Client.AddKeyFile(ctx, dhchapKeyName, s.o.DHCHAPKeyFile); err != nil {
		return fmt.Errorf("load DH-HMAC-CHAP key file %s (absolute, mode 0600): %w", s.o.DHCHAPKeyFile, err)
	}
	return nil
}
