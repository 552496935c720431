package spdktest

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// The host ACL of an nvmf subsystem, as c-hostacl.jsonl Part 1 recorded it.

// errInternal is what v24.09 answers for a duplicate or absent host and for a
// malformed host NQN: the plain JSON-RPC internal error, no detail.
var errInternal = rpcError{-32603, "Internal error"}

// nqnDomain is "nqn.yyyy-mm.<reverse domain>" (NVMe base spec 4.5).
var nqnDomain = regexp.MustCompile(`^nqn\.[0-9]{4}-[0-9]{2}\.[A-Za-z0-9][A-Za-z0-9.-]*`)

// validNQN follows SPDK's nvmf_nqn_is_valid: 11..223 bytes, either the
// uuid form or a date and reverse domain.
func validNQN(nqn string) bool {
	const uuidPrefix = "nqn.2014-08.org.nvmexpress:uuid:"
	if len(nqn) < 11 || len(nqn) > 223 {
		return false
	}
	if strings.HasPrefix(nqn, uuidPrefix) {
		rest := nqn[len(uuidPrefix):]
		_, err := uuid.Parse(rest)
		return err == nil && len(rest) == 36
	}
	return nqnDomain.MatchString(nqn)
}

type hostParams struct {
	NQN            *string `json:"nqn"`
	Host           *string `json:"host"`
	TgtName        string  `json:"tgt_name"`
	Psk            string  `json:"psk"`
	DhchapKey      string  `json:"dhchap_key"`
	DhchapCtrlrKey string  `json:"dhchap_ctrlr_key"`
}

// hostSubsystem decodes p and finds its subsystem: -32602 for a decode
// failure or an unknown subsystem. Caller holds e.mu.
func (e *Emulator) hostSubsystem(params json.RawMessage, p *hostParams) (*subsystem, error) {
	if err := decodeStrict(params, p); err != nil || p.NQN == nil || p.Host == nil {
		return nil, errInvalidParams
	}
	s, ok := e.st.subsys[*p.NQN]
	if !ok {
		return nil, errInvalidParams // "Unable to find subsystem with NQN"
	}
	return s, nil
}

func (s *subsystem) hostIndex(nqn string) int {
	for i, h := range s.hosts {
		if h == nqn {
			return i
		}
	}
	return -1
}

// nvmfHost serves nvmf_subsystem_add_host and nvmf_subsystem_remove_host.
func nvmfHost(add bool) handler {
	return func(e *Emulator, params json.RawMessage, _ bool) (any, error) {
		var p hostParams
		e.mu.Lock()
		defer e.mu.Unlock()
		s, err := e.hostSubsystem(params, &p)
		if err != nil {
			return nil, err
		}
		i := s.hostIndex(*p.Host)
		if !add {
			if i < 0 {
				return nil, errInternal
			}
			s.hosts = append(s.hosts[:i], s.hosts[i+1:]...)
			delete(s.hostKeys, *p.Host)
			return true, nil
		}
		for _, k := range []string{p.DhchapKey, p.DhchapCtrlrKey, p.Psk} {
			if k != "" && e.st.key(k) == nil {
				return nil, errInvalidParams // "Unable to find DH-HMAC-CHAP key: nokey"
			}
		}
		if !validNQN(*p.Host) || i >= 0 {
			return nil, errInternal
		}
		s.hosts = append([]string{*p.Host}, s.hosts...) // newest first
		if p.DhchapKey != "" || p.DhchapCtrlrKey != "" {
			if s.hostKeys == nil {
				s.hostKeys = map[string]hostKeys{}
			}
			s.hostKeys[*p.Host] = hostKeys{p.DhchapKey, p.DhchapCtrlrKey}
		}
		return true, nil
	}
}

func nvmfAllowAnyHost(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		NQN          *string `json:"nqn"`
		AllowAnyHost *bool   `json:"allow_any_host"`
		TgtName      string  `json:"tgt_name"`
	}
	if err := decodeStrict(params, &p); err != nil || p.NQN == nil || p.AllowAnyHost == nil {
		return nil, errInvalidParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.st.subsys[*p.NQN]
	if !ok {
		return nil, errInvalidParams
	}
	s.allowAnyHost = *p.AllowAnyHost // the host list is kept either way
	return true, nil
}

// hostKeys are the keyring names a host entry refers to. Removing a key from
// the keyring leaves the names in place (c-hostacl.jsonl line 81).
type hostKeys struct{ dhchap, ctrlr string }

func (s *subsystem) hostJSON(nqn string) any {
	k := s.hostKeys[nqn]
	return struct {
		NQN            string `json:"nqn"`
		DhchapKey      string `json:"dhchap_key,omitempty"`
		DhchapCtrlrKey string `json:"dhchap_ctrlr_key,omitempty"`
	}{nqn, k.dhchap, k.ctrlr}
}
