package spdk

import "context"

// SubsystemHost is one allowed host of an nvmf subsystem (newest first in
// nvmf_get_subsystems). DH-HMAC-CHAP key names appear, never secrets.
type SubsystemHost struct {
	NQN            string `json:"nqn"`
	DhchapKey      string `json:"dhchap_key,omitempty"`
	DhchapCtrlrKey string `json:"dhchap_ctrlr_key,omitempty"`
}

// AddHost calls nvmf_subsystem_add_host. SPDK answers a host that is already
// present with a bare -32603 "Internal error" (the same as a malformed NQN),
// so callers read nvmf_get_subsystems first.
// dhchapKey, when not empty, names a keyring key the host must prove it holds
// (DH-HMAC-CHAP).
func (c *Client) AddHost(ctx context.Context, nqn, host, dhchapKey string) error {
	p := map[string]string{"nqn": nqn, "host": host}
	if dhchapKey != "" {
		p["dhchap_key"] = dhchapKey
	}
	return c.Call(ctx, "nvmf_subsystem_add_host", p, nil)
}

// RemoveHost calls nvmf_subsystem_remove_host (-32603 when the host is absent).
func (c *Client) RemoveHost(ctx context.Context, nqn, host string) error {
	return c.Call(ctx, "nvmf_subsystem_remove_host", map[string]string{"nqn": nqn, "host": host}, nil)
}

// AllowAnyHost calls nvmf_subsystem_allow_any_host; the host list is kept.
func (c *Client) AllowAnyHost(ctx context.Context, nqn string, allow bool) error {
	return c.Call(ctx, "nvmf_subsystem_allow_any_host", map[string]any{"nqn": nqn, "allow_any_host": allow}, nil)
}

// KeyringKey is one entry of keyring_get_keys. A removed key that is still in
// use is listed with Removed and no Path.
type KeyringKey struct {
	Name    string `json:"name"`
	Module  string `json:"module"`
	Removed bool   `json:"removed"`
	Path    string `json:"path,omitempty"`
}

// GetKeys calls keyring_get_keys.
func (c *Client) GetKeys(ctx context.Context) ([]KeyringKey, error) {
	var out []KeyringKey
	err := c.Call(ctx, "keyring_get_keys", nil, &out)
	return out, err
}

// AddKeyFile calls keyring_file_add_key: SPDK reads the secret from path
// (absolute, mode 0600) when the key is used; the agent never reads it.
func (c *Client) AddKeyFile(ctx context.Context, name, path string) error {
	return c.Call(ctx, "keyring_file_add_key", map[string]string{"name": name, "path": path}, nil)
}

// RemoveKey calls keyring_file_remove_key (-126 for an unknown name).
func (c *Client) RemoveKey(ctx context.Context, name string) error {
	return c.Call(ctx, "keyring_file_remove_key", map[string]string{"name": name}, nil)
}
