package spdktest

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// The file keyring of SPDK v24.09 (c-hostacl.jsonl Part 2, lines 27-34 and
// 77-82). Key contents are only read when a key is used, so adding accepts
// any file that passes the path checks.

type keyringKey struct {
	name, path string
	// removed keys that a host entry still names stay listed, without path.
	removed bool
}

// errKeyringParams is keyring_file_add_key's decode error: -32602 with
// strerror(EINVAL), not "Invalid parameters".
var errKeyringParams = rpcError{-32602, "Invalid argument"}

// key finds a key that is not removed.
func (s *state) key(name string) *keyringKey {
	for _, k := range s.keys {
		if k.name == name && !k.removed {
			return k
		}
	}
	return nil
}

// keyInUse reports whether a subsystem host entry names the key.
func (s *state) keyInUse(name string) bool {
	for _, ss := range s.subsys {
		for _, hk := range ss.hostKeys {
			if hk.dhchap == name || hk.ctrlr == name {
				return true
			}
		}
	}
	return false
}

// checkKeyFile is keyring_file_check_path: absolute, present, no group or
// other permission bits.
func checkKeyFile(path string) error {
	if !filepath.IsAbs(path) {
		return errf(-1, "Operation not permitted") // "Non-absolute paths are not allowed"
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errf(-2, "No such file or directory")
		}
		return errf(-1, "Operation not permitted")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return errf(-1, "Operation not permitted") // "Invalid permissions for key file"
	}
	return nil
}

func keyringFileAddKey(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name *string `json:"name"`
		Path *string `json:"path"`
	}
	// SPDK decodes this one relaxed: unknown keys are ignored.
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || p.Name == nil || p.Path == nil {
		return nil, errKeyringParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.key(*p.Name) != nil {
		return nil, errf(-17, "File exists") // "Key 'key0' already exists"
	}
	if err := checkKeyFile(*p.Path); err != nil {
		return nil, err
	}
	e.st.keys = append(e.st.keys, &keyringKey{name: *p.Name, path: *p.Path})
	return true, nil
}

func keyringFileRemoveKey(e *Emulator, params json.RawMessage, _ bool) (any, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil || p.Name == nil {
		return nil, errKeyringParams
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := e.st.key(*p.Name)
	if k == nil {
		return nil, errf(-126, "Required key not available") // "Key 'key0' does not exist"
	}
	out := e.st.keys[:0]
	for _, x := range e.st.keys {
		if x != k {
			out = append(out, x)
		}
	}
	e.st.keys = out
	if e.st.keyInUse(k.name) {
		// Still referenced: listed last as removed, without its path.
		e.st.keys = append(e.st.keys, &keyringKey{name: k.name, removed: true})
	}
	return true, nil
}

type keyJSON struct {
	Name    string `json:"name"`
	Module  string `json:"module"`
	Removed bool   `json:"removed"`
	Probed  bool   `json:"probed"`
	Refcnt  int    `json:"refcnt"`
	Path    string `json:"path,omitempty"`
}

func keyringGetKeys(e *Emulator, params json.RawMessage, hasParams bool) (any, error) {
	if hasParams {
		return nil, errInvalidParams // takes no parameters
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []keyJSON{}
	for _, k := range e.st.keys {
		out = append(out, keyJSON{Name: k.name, Module: "keyring_file", Removed: k.removed, Refcnt: 1, Path: k.path})
	}
	return out, nil
}
