//go:build functional

package rpc

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

// osloLoad registers oslo.messaging 14's own rabbit and amqp options with
// oslo.config, loads files with it, and returns the values the agent also
// has plus the deprecated names oslo warned about ("[group] name").
const osloLoad = `
import sys, json, logging
logging.basicConfig(level=logging.WARNING, format="LOG %(message)s", stream=sys.stderr)
from oslo_config import cfg
from oslo_messaging._drivers import impl_rabbit, amqp
conf = cfg.ConfigOpts()
conf.register_opts(impl_rabbit.rabbit_opts + amqp.amqp_opts, group='oslo_messaging_rabbit')
args = []
for f in sys.argv[1:]:
    args += ['--config-file', f]
conf(args=args, default_config_files=[])
g = conf.oslo_messaging_rabbit
print(json.dumps({k: str(getattr(g, k)) for k in ['ssl', 'ssl_version', 'ssl_ca_file', 'ssl_cert_file',
    'ssl_key_file', 'rabbit_ha_queues', 'amqp_auto_delete', 'rabbit_retry_backoff']}))
`

// The agent resolves oslo's deprecated names exactly as oslo.config does for
// oslo.messaging: same values, same deprecation warnings, for files in either
// order and for old and new names in one file.
func TestDeprecatedNamesMatchOsloConfig(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"new":  "[oslo_messaging_rabbit]\nssl = false\nssl_ca_file = /new.pem\nssl_version = SSLv23\n",
		"old":  "[oslo_messaging_rabbit]\nrabbit_use_ssl = true\nkombu_ssl_ca_certs = /old.pem\nkombu_ssl_certfile = /c.pem\nkombu_ssl_keyfile = /k.pem\nkombu_ssl_version = TLSv1_2\n",
		"both": "[oslo_messaging_rabbit]\nssl = false\nrabbit_use_ssl = true\nkombu_ssl_ca_certs = /old.pem\nssl_ca_file = /new.pem\n",
		"dflt": "[DEFAULT]\nrabbit_ha_queues = true\namqp_auto_delete = true\nrabbit_retry_backoff = 7\n[OSLO_MESSAGING_RABBIT]\nkombu_ssl_keyfile = /k2.pem\n",
		"grp":  "[DEFAULT]\nrabbit_ha_queues = true\n[oslo_messaging_rabbit]\nrabbit_ha_queues = false\nrabbit_retry_backoff = 3\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	warned := regexp.MustCompile(`Option "([^"]+)" from group "([^"]+)" is deprecated`)
	for _, set := range [][]string{{"new", "old"}, {"old", "new"}, {"both"}, {"old"}, {"dflt"}, {"grp"}, {"dflt", "grp"}, {"grp", "dflt", "old"}} {
		var paths []string
		for _, n := range set {
			paths = append(paths, filepath.Join(dir, n+".conf"))
		}
		cmd := exec.Command(python, append([]string{"-c", osloLoad}, paths...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: oslo.config: %v\n%s", set, err, stderr.String())
		}
		var oslo map[string]string
		if err := json.Unmarshal(out, &oslo); err != nil {
			t.Fatalf("%v: %s: %v", set, out, err)
		}
		var osloWarned []string
		for _, m := range warned.FindAllStringSubmatch(stderr.String(), -1) {
			osloWarned = append(osloWarned, "["+m[2]+"] "+m[1])
		}

		c, notices, err := config.LoadWithNotices(paths, nil)
		if err != nil {
			t.Fatalf("%v: %v", set, err)
		}
		r := c.Rabbit
		pyBool := map[bool]string{true: "True", false: "False"}
		ours := map[string]string{
			"ssl": pyBool[r.SSL], "ssl_version": r.SSLVersion, "ssl_ca_file": r.SSLCAFile, "ssl_cert_file": r.SSLCertFile,
			"ssl_key_file": r.SSLKeyFile, "rabbit_ha_queues": pyBool[r.RabbitHAQueues], "amqp_auto_delete": pyBool[r.AMQPAutoDelete],
			"rabbit_retry_backoff": jsonNum(r.RetryBackoff),
		}
		if !reflect.DeepEqual(ours, oslo) {
			t.Errorf("%v: agent %v, oslo.config %v", set, ours, oslo)
		}
		var ourWarned []string
		for _, n := range notices {
			// "ignored" notices are the agent's extra: oslo says nothing then
			if n.Kind == config.NoticeDeprecated && !strings.Contains(n.Msg, "ignored") {
				ourWarned = append(ourWarned, "["+n.Section+"] "+n.Key)
			}
		}
		sort.Strings(ourWarned)
		sort.Strings(osloWarned)
		if !reflect.DeepEqual(ourWarned, osloWarned) {
			t.Errorf("%v: agent warns about %v, oslo.config about %v", set, ourWarned, osloWarned)
		}
	}
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
