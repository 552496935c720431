package daemon

import (
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
)

// The mechanism packages own their options and import no configuration;
// these map the configuration file's sections onto them.

// RabbitOptions maps [oslo_messaging_rabbit] (the same options as oslo's,
// so the conversion is field by field; a field added to one side only
// stops it compiling).
func RabbitOptions(c config.RabbitOpts) rpcapi.RabbitOptions { return rpcapi.RabbitOptions(c) }

// NetworkOptions maps [ovs] onto the network reconciler's OVSDB options;
// the caller sets the rest (node, driver, trigger, retries, logger).
func NetworkOptions(c config.OVSOpts) network.Options {
	return network.Options{
		OVSDBConnection: c.OVSDBConnection, SSLKeyFile: c.SSLKeyFile, SSLCertFile: c.SSLCertFile, SSLCACertFile: c.SSLCACertFile,
		IntegrationBridge: c.IntegrationBridge, BindTimeout: c.BindTimeout,
	}
}

// StorageSettings maps [storage].
func StorageSettings(c config.StorageOpts) storage.Settings {
	return storage.Settings{
		HostNQN: c.HostNQN, CtrlrLossTimeoutSec: c.CtrlrLossTimeoutSec, ReconnectDelaySec: c.ReconnectDelaySec,
		FastIOFailTimeoutSec: c.FastIOFailTimeoutSec, Multipath: c.Multipath,
		ConfigDriveDir: c.ConfigDriveDir, ConfigDriveMaxBytes: c.ConfigDriveMaxBytes,
		ConfigDriveCAFile: c.ConfigDriveCAFile, ConfigDriveTimeout: c.ConfigDriveTimeout,
	}
}
