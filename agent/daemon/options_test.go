package daemon_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/daemon"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// fill sets every field of the struct p points to a value distinct from
// its zero value and from the other fields'.
func fill(t *testing.T, p any) {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		n := i + 2
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "-value")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int:
			f.SetInt(int64(n))
		case reflect.Int64: // time.Duration
			f.SetInt(int64(time.Duration(n) * time.Second))
		case reflect.Float64:
			f.SetFloat(float64(n) + 0.5)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"a", "b"}))
		default:
			t.Fatalf("fill: field %s of kind %s", v.Type().Field(i).Name, f.Kind())
		}
	}
}

// mapped checks that every field of from but those in skip (used
// elsewhere, by design) arrives in the field of the same name of to.
func mapped(t *testing.T, from, to any, skip ...string) {
	t.Helper()
	fv, tv := reflect.ValueOf(from), reflect.ValueOf(to)
	for i := range fv.NumField() {
		name := fv.Type().Field(i).Name
		if slices.Contains(skip, name) {
			continue
		}
		got := tv.FieldByName(name)
		if !got.IsValid() {
			t.Errorf("%s.%s has no counterpart in %s", fv.Type(), name, tv.Type())
			continue
		}
		if !reflect.DeepEqual(got.Interface(), fv.Field(i).Interface()) {
			t.Errorf("%s.%s = %v arrives as %v", fv.Type(), name, fv.Field(i), got)
		}
	}
}

// Every option of [ovs], [storage] and [oslo_messaging_rabbit] reaches the
// package that uses it ([ovs] sysfs_root goes to the DPU drivers, [storage]
// quiesce_max_hold to storage.HoldOptions in buildComponents).
func TestOptionsMapEveryField(t *testing.T) {
	var ovs config.OVSOpts
	fill(t, &ovs)
	mapped(t, ovs, daemon.NetworkOptions(ovs), "SysfsRoot")
	var st config.StorageOpts
	fill(t, &st)
	mapped(t, st, daemon.StorageSettings(st), "QuiesceMaxHold")
	var rb config.RabbitOpts
	fill(t, &rb)
	mapped(t, rb, daemon.RabbitOptions(rb))
}

// rpcapi's defaults are the configuration's: a client or server built
// without a configuration file behaves as the agent does.
func TestRabbitDefaultsAgree(t *testing.T) {
	if got, want := daemon.RabbitOptions(config.Defaults().Rabbit), rpcapi.DefaultRabbitOptions(); got != want {
		t.Fatalf("[oslo_messaging_rabbit] defaults %+v, rpcapi.DefaultRabbitOptions %+v", got, want)
	}
}
