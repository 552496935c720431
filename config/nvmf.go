package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/netaddr"
)

// parseList reads an oslo.config ListOpt: comma-separated, blanks dropped,
// duplicates refused.
func parseList(s string) ([]string, error) {
	out := []string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		for _, seen := range out {
			if seen == item {
				return nil, fmt.Errorf("%q is listed twice", item)
			}
		}
		out = append(out, item)
	}
	return out, nil
}

// validNQN is the shape SPDK accepts for a host NQN: "nqn.", 11 to 223 bytes.
func validNQN(s string) bool {
	return strings.HasPrefix(s, "nqn.") && len(s) >= 11 && len(s) <= 223 && !strings.ContainsAny(s, " \t,")
}

// validate refuses a host-facing TCP listener that the network can reach
// while any host may connect: every volume of the node would be readable by
// anyone who can route to the DPU.
func (o NVMfOpts) validate(driver string) []error {
	var errs []error
	for _, h := range o.AllowedHostNQNs {
		if !validNQN(h) {
			errs = append(errs, fmt.Errorf("[spdk_nvmf] allowed_host_nqns: %q is not an NVMe qualified name", h))
		}
	}
	if o.DHCHAPKeyFile != "" && (len(o.AllowedHostNQNs) == 0 || !filepath.IsAbs(o.DHCHAPKeyFile)) {
		errs = append(errs, fmt.Errorf("[spdk_nvmf] dhchap_key_file %q must be an absolute path and needs allowed_host_nqns", o.DHCHAPKeyFile))
	}
	generic := driver == "spdk-generic" || driver == "spdk-nvmf"
	if generic && strings.EqualFold(o.Transport, "TCP") && !netaddr.IsLoopback(o.ListenAddress) && len(o.AllowedHostNQNs) == 0 {
		errs = append(errs, fmt.Errorf("[spdk_nvmf] transport TCP on listen_address %q (not loopback) needs allowed_host_nqns: "+
			"otherwise any host that reaches the DPU can connect to the node's volumes", o.ListenAddress))
	}
	return errs
}
