// Package vswitchd holds libovsdb models generated from the Open_vSwitch
// schema of Debian 12's OVS 3.1 (the oldest schema we support: libovsdb
// refuses to connect when a model has columns the server lacks).
package vswitchd

//go:generate go tool modelgen -p vswitchd -o . vswitch.ovsschema
